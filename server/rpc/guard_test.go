package rpc

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/internal/loglimit"
)

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newLimiter(time.Now)
	for i := range 3 * limiterEntries {
		l.fail(limitKey{"default", ClassNode, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)})
	}
	if n := l.size(); n > limiterEntries {
		t.Fatalf("limiter holds %d entries, bound %d", n, limiterEntries)
	}
}

func TestRatesMemoryIsBounded(t *testing.T) {
	r := newRates(time.Now)
	for i := range 3 * limiterEntries {
		r.take(strings.Repeat("k", i%7)+string(rune(i)), 10)
	}
	if n := len(r.buckets); n > limiterEntries {
		t.Fatalf("rates hold %d buckets, bound %d", n, limiterEntries)
	}
}

// A caller refused new requests over and over writes a bounded number of
// lines, the next one saying how many were left out.
func TestRefusedRequestLinesAreBounded(t *testing.T) {
	var buf bytes.Buffer
	g := NewGuard(time.Now, slog.New(slog.NewTextHandler(&buf, nil)))
	s := &Session{Profile: &Profile{Name: "default", RequestsPerAddress: 1, RequestsPerProfile: 1000}, RemoteIP: "192.0.2.7"}
	refused := 0
	for range 500 {
		if g.Admit(s) != nil {
			refused++
		}
	}
	lines := strings.Count(buf.String(), "pairing request refused")
	if refused != 499 || lines == 0 || lines > loglimit.Lines {
		t.Fatalf("%d refused, %d lines logged (at most %d):\n%s", refused, lines, loglimit.Lines, buf.String())
	}
}

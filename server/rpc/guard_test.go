package rpc

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
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

// A caller refused new requests over and over writes a line a minute,
// the next one saying how many were left out; another address still gets
// its own line.
func TestRefusedRequestLinesAreBounded(t *testing.T) {
	var buf bytes.Buffer
	g := NewGuard(time.Now, slog.New(slog.NewTextHandler(&buf, nil)))
	p := &Profile{Name: "default", RequestsPerAddress: 1, RequestsPerProfile: 1000}
	s := &Session{Profile: p, RemoteIP: "192.0.2.7"}
	refused := 0
	for range 500 {
		if g.AdmitRequest(s) != nil {
			refused++
		}
	}
	other := &Session{Profile: p, RemoteIP: "192.0.2.8"}
	g.AdmitRequest(other)
	if g.AdmitRequest(other) == nil {
		t.Fatal("a second request within the minute was admitted")
	}
	if g.Admit(s) == nil {
		t.Fatal("Admit admitted")
	}
	lines := strings.Count(buf.String(), `msg="pairing request refused"`)
	if refused != 499 || lines != 2 || !strings.Contains(buf.String(), `remote=192.0.2.7 reason="too many new pairing requests from this address; retry in 60s"`) {
		t.Fatalf("%d refused, %d lines logged (want one an address):\n%s", refused, lines, buf.String())
	}
}

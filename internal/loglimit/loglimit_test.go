package loglimit

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestValue(t *testing.T) {
	if got := Value("short"); got != "short" {
		t.Fatalf("Value(short) = %q", got)
	}
	long := strings.Repeat("a", MaxValue-1) + "é" + strings.Repeat("b", 1000) // é straddles the cut
	got := Value(long)
	if want := strings.Repeat("a", MaxValue-1) + "…(1201 bytes)"; got != want {
		t.Fatalf("Value(long) = %q, want %q", got, want)
	}
}

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	log := timeless(&buf)
	now := time.Unix(1000, 0)
	l := &Limiter{Burst: 2, Window: time.Second}
	l.now = func() time.Time { return now }
	for i := range 5 {
		l.Log(log, slog.LevelWarn, "refused", "i", i)
	}
	now = now.Add(time.Second)
	l.Log(log, slog.LevelWarn, "refused", "i", 5)
	want := "level=WARN msg=refused i=0\nlevel=WARN msg=refused i=1\nlevel=WARN msg=refused i=5 suppressed=3\n"
	if buf.String() != want {
		t.Fatalf("logged:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// One client gets the same line through once a KeyWindow, the next one
// saying how many were left out; the digits in its strings do not make
// another line, but another message, another string or another number
// does, and another client gets its own.
func TestLogFrom(t *testing.T) {
	var buf bytes.Buffer
	log := timeless(&buf)
	now := time.Unix(1000, 0)
	l := New()
	l.now = func() time.Time { return now }
	for i := range 100 {
		l.LogFrom("10.0.0.1", log, slog.LevelWarn, "refused", "reason", fmt.Sprintf("retry in %ds", 100-i), "max", 3)
		now = now.Add(100 * time.Millisecond)
	}
	l.LogFrom("10.0.0.1", log, slog.LevelWarn, "refused", "reason", "bad token", "max", 3)
	l.LogFrom("10.0.0.1", log, slog.LevelWarn, "refused", "reason", "retry in 1s", "max", 4)
	l.LogFrom("10.0.0.1", log, slog.LevelWarn, "locked out", "reason", "retry in 1s", "max", 3)
	l.LogFrom("10.0.0.2", log, slog.LevelWarn, "refused", "reason", "retry in 1s", "max", 3)
	now = now.Add(KeyWindow)
	l.LogFrom("10.0.0.1", log, slog.LevelWarn, "refused", "reason", "retry in 9s", "max", 3)
	want := `level=WARN msg=refused reason="retry in 100s" max=3
level=WARN msg=refused reason="bad token" max=3
level=WARN msg=refused reason="retry in 1s" max=4
level=WARN msg="locked out" reason="retry in 1s" max=3
level=WARN msg=refused reason="retry in 1s" max=3
level=WARN msg=refused reason="retry in 9s" max=3 repeats=99
`
	if buf.String() != want {
		t.Fatalf("logged:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// The clients remembered are bounded: past maxKeys, the ones whose
// window is over are forgotten, or, when none is, all of them.
func TestLogFromMemoryIsBounded(t *testing.T) {
	l := &Limiter{Burst: 1 << 30, Window: time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range 3 * maxKeys {
		l.LogFrom(strconv.Itoa(i), log, slog.LevelWarn, "refused")
	}
	if n := len(l.fromKey); n > maxKeys {
		t.Fatalf("%d clients remembered, bound %d", n, maxKeys)
	}
}

// timeless is a text logger to w without the time: lines to compare.
func timeless(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
}

// Package loglimit bounds what clients can make the server log: values
// they chose are cut short, and lines they can cause at will (refused
// requests, failed connects) are let through at a bounded rate, the rest
// counted.
package loglimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxValue is the most bytes of a client's value (a Host, an Origin, a
// path, a client id) a log line holds.
const MaxValue = 200

// Value is s cut to MaxValue bytes at a character boundary, saying how
// long it was.
func Value(s string) string {
	if len(s) <= MaxValue {
		return s
	}
	cut := MaxValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

// Limiter lets Burst lines through in each Window and counts the others;
// the next line it lets through says how many were left out.
type Limiter struct {
	Burst  int
	Window time.Duration
	now    func() time.Time // nil: time.Now

	mu         sync.Mutex
	start      time.Time
	lines      int
	suppressed int
}

// Lines in Window is how many lines of one kind a client can cause (a
// refused request, a refused connect, a failed token).
const (
	Lines  = 20
	Window = 10 * time.Second
)

// New is a Limiter of Lines a Window.
func New() *Limiter {
	return &Limiter{Burst: Lines, Window: Window}
}

// allow reports whether a line may be written now, and how many were left
// out before it.
func (l *Limiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	if now.Sub(l.start) >= l.Window {
		l.start, l.lines = now, 0
	}
	if l.lines >= l.Burst {
		l.suppressed++
		return false, 0
	}
	l.lines++
	left := l.suppressed
	l.suppressed = 0
	return true, left
}

// Log writes msg at level unless the limiter is spent; a line after some
// were left out carries "suppressed" with their number.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	ok, left := l.allow()
	if !ok {
		return
	}
	if left > 0 {
		args = append(args, "suppressed", left)
	}
	log.Log(context.Background(), level, msg, args...)
}

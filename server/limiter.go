package server

import (
	"sync"
	"time"
)

// Failed-attempt limits (spec/quality.md): 10 failures a minute from one
// address, then 5 minutes of refusal.
const (
	failuresAllowed = 10
	failureWindow   = time.Minute
	lockout         = 5 * time.Minute
	// limiterEntries bounds the memory a flood of addresses can take.
	limiterEntries = 10_000
)

// limiter counts failed authentication attempts per source address.
type limiter struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*attempts
}

type attempts struct {
	windowStart time.Time
	failures    int
	lockedUntil time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, entries: map[string]*attempts{}}
}

// blocked reports whether addr is locked out, and for how long still.
func (l *limiter) blocked(addr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.entries[addr]
	if a == nil {
		return 0, false
	}
	if left := a.lockedUntil.Sub(l.now()); left > 0 {
		return left, true
	}
	return 0, false
}

// fail records a failed attempt from addr.
func (l *limiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.entries[addr]
	if a == nil {
		if len(l.entries) >= limiterEntries {
			l.evict(now)
		}
		a = &attempts{windowStart: now}
		l.entries[addr] = a
	}
	if now.Sub(a.windowStart) > failureWindow {
		a.windowStart, a.failures = now, 0
	}
	a.failures++
	if a.failures >= failuresAllowed {
		a.lockedUntil = now.Add(lockout)
		a.windowStart, a.failures = now, 0
	}
}

// evict makes room in bulk (down to 90% of the bound, so a flood pays the
// scan once per thousand addresses): first entries with nothing left to
// remember, then unlocked ones, then any.
func (l *limiter) evict(now time.Time) {
	target := limiterEntries * 9 / 10
	for pass := range 3 {
		for addr, a := range l.entries {
			if len(l.entries) <= target {
				return
			}
			idle := now.After(a.lockedUntil) && now.Sub(a.windowStart) > failureWindow
			if pass == 2 || (pass == 0 && idle) || (pass == 1 && now.After(a.lockedUntil)) {
				delete(l.entries, addr)
			}
		}
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

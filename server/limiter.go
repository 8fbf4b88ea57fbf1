package server

import (
	"sync"
	"time"
)

// Failed-attempt limits (spec/quality.md): 10 failures a minute, then 5
// minutes of refusal, counted per profile, credential class and source
// address, so a node's failures never lock out an operator and one
// profile's never count against another.
const (
	failuresAllowed = 10
	failureWindow   = time.Minute
	lockout         = 5 * time.Minute
	// limiterEntries bounds the memory a flood of addresses can take.
	limiterEntries = 10_000
)

// Credential classes of the failed-attempt limiter.
const (
	classOperator = "operator token"
	classNode     = "node token"
)

// anyProfile is the profile of a failure that tried every profile at once
// (GET /api/v1/profiles).
const anyProfile = "*"

// limitKey is what the limiter counts by.
type limitKey struct {
	profile, class, addr string
}

// limiter counts failed authentication attempts.
type limiter struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[limitKey]*attempts
}

type attempts struct {
	windowStart time.Time
	failures    int
	lockedUntil time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, entries: map[limitKey]*attempts{}}
}

// blocked reports whether k is locked out, and for how long still.
func (l *limiter) blocked(k limitKey) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.entries[k]
	if a == nil {
		return 0, false
	}
	if left := a.lockedUntil.Sub(l.now()); left > 0 {
		return left, true
	}
	return 0, false
}

// fail records a failed attempt and reports whether it started a lockout.
func (l *limiter) fail(k limitKey) (locked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.entries[k]
	if a == nil {
		if len(l.entries) >= limiterEntries {
			l.evict(now)
		}
		a = &attempts{windowStart: now}
		l.entries[k] = a
	}
	if now.Sub(a.windowStart) > failureWindow {
		a.windowStart, a.failures = now, 0
	}
	a.failures++
	if a.failures >= failuresAllowed {
		a.lockedUntil = now.Add(lockout)
		a.windowStart, a.failures = now, 0
		return true
	}
	return false
}

// evict makes room in bulk (down to 90% of the bound, so a flood pays the
// scan once per thousand keys): first entries with nothing left to
// remember, then unlocked ones, then any.
func (l *limiter) evict(now time.Time) {
	target := limiterEntries * 9 / 10
	for pass := range 3 {
		for k, a := range l.entries {
			if len(l.entries) <= target {
				return
			}
			idle := now.After(a.lockedUntil) && now.Sub(a.windowStart) > failureWindow
			if pass == 2 || (pass == 0 && idle) || (pass == 1 && now.After(a.lockedUntil)) {
				delete(l.entries, k)
			}
		}
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

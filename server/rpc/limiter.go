package rpc

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
	ClassOperator = "operator token"
	ClassNode     = "node token"
)

// AnyProfile is the profile of a failure that tried every profile at once
// (GET /api/v1/profiles).
const AnyProfile = "*"

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

// evict makes room in bulk: first entries with nothing left to remember,
// then unlocked ones, then any.
func (l *limiter) evict(now time.Time) {
	shrink(l.entries,
		func(a *attempts) bool { return now.After(a.lockedUntil) && now.Sub(a.windowStart) > failureWindow },
		func(a *attempts) bool { return now.After(a.lockedUntil) })
}

// shrink deletes entries of a bounded map down to 90% of limiterEntries
// (so a flood pays the scan once per thousand keys): first those the
// first rule lets go, then the next rule's, then any.
func shrink[K comparable, V any](m map[K]V, rules ...func(V) bool) {
	target := limiterEntries * 9 / 10
	for _, mayGo := range append(rules, func(V) bool { return true }) {
		for k, v := range m {
			if len(m) <= target {
				return
			}
			if mayGo(v) {
				delete(m, k)
			}
		}
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

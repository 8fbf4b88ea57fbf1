package rpc

import (
	"sync"
	"time"
)

// rates is a token bucket per key: perMinute takes a minute, and at most
// a minute's worth at once. Its memory is bounded like the limiter's.
type rates struct {
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRates(now func() time.Time) *rates {
	return &rates{now: now, buckets: map[string]*bucket{}}
}

// take spends one token of key, or says how long until there is one.
func (r *rates) take(key string, perMinute int) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	b := r.refill(key, perMinute, now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / float64(perMinute) * float64(time.Minute)), false
	}
	b.tokens--
	return 0, true
}

// refund gives back a token that take spent for nothing.
func (r *rates) refund(key string, perMinute int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.refill(key, perMinute, r.now())
	b.tokens = min(b.tokens+1, float64(perMinute))
}

func (r *rates) refill(key string, perMinute int, now time.Time) *bucket {
	b := r.buckets[key]
	if b == nil {
		if len(r.buckets) >= limiterEntries {
			r.evict(now)
		}
		b = &bucket{tokens: float64(perMinute), at: now}
		r.buckets[key] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(b.tokens+elapsed.Minutes()*float64(perMinute), float64(perMinute))
		b.at = now
	}
	return b
}

// evict drops the buckets a minute has refilled (as good as new), then
// any, down to 90% of the bound.
func (r *rates) evict(now time.Time) {
	shrink(r.buckets, func(b *bucket) bool { return now.Sub(b.at) >= time.Minute })
}

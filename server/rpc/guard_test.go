package rpc

import (
	"fmt"
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

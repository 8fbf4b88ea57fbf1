package ws

import (
	"sync"
	"time"
)

// maxSeenSignatures bounds the v1 signatures remembered: about 150 bytes
// each. Full of unexpired ones, v1 connects are refused until some
// expire, rather than one being forgotten and replayable.
const maxSeenSignatures = 100_000

// seenSignatures remembers the v1 device signatures accepted while they
// are fresh. A v1 signature binds no challenge, so it would verify again
// on another connection for as long as its signedAt is within the window;
// accepted once, it is refused after (a replayed connect frame could
// otherwise open a session as the device, and be handed its token on
// approval).
type seenSignatures struct {
	mu   sync.Mutex
	seen map[string]time.Time // device id + signature → when it stops verifying anyway
	// swept is when a full map was last swept: at most once a second, so
	// that connects meeting a full map do not each walk it.
	swept time.Time
}

// first records signature (of device) as used until expires and reports
// whether it was new; full says none can be recorded now.
func (s *seenSignatures) first(device, signature string, expires, now time.Time) (fresh, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	key := device + "\x00" + signature
	if until, ok := s.seen[key]; ok && now.Before(until) {
		return false, false
	}
	if len(s.seen) >= maxSeenSignatures {
		if now.Sub(s.swept) < time.Second {
			return false, true
		}
		s.swept = now
		for k, until := range s.seen {
			if !now.Before(until) {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= maxSeenSignatures {
			return false, true
		}
	}
	s.seen[key] = expires
	return true, false
}

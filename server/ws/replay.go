package ws

import (
	"net/netip"
	"sync"
	"time"
)

// maxSeenSignatures bounds the v1 signatures remembered: about 150 bytes
// each. Full of unexpired ones, v1 connects are refused until some
// expire, rather than one being forgotten and replayable.
// maxSeenPerAddress is one address's share (an IPv6 /64's): an outside
// attack filled the map from one address in a minute, and v1 nodes of
// every profile were refused for 20 minutes.
const (
	maxSeenSignatures = 100_000
	maxSeenPerAddress = 1_000
)

// seenSignatures remembers the v1 device signatures accepted while they
// are fresh. A v1 signature binds no challenge, so it would verify again
// on another connection for as long as its signedAt is within the window;
// accepted once, it is refused after (a replayed connect frame could
// otherwise open a session as the device, and be handed its token on
// approval).
type seenSignatures struct {
	mu   sync.Mutex
	seen map[string]seenUse // device id + signature
	// byAddr counts the unexpired entries of each address.
	byAddr map[string]int
	// swept is when a full map (or an address's full share) was last
	// swept: at most once a second, so that connects meeting one do not
	// each walk the map.
	swept time.Time
}

type seenUse struct {
	until time.Time // when it stops verifying anyway
	addr  string
}

// addrKey is what one client's share is counted by: its address, or its
// IPv6 /64 (one host's usual allotment).
func addrKey(remoteIP string) string {
	a, err := netip.ParseAddr(remoteIP)
	if err != nil {
		return remoteIP
	}
	if a = a.Unmap(); a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// first records signature (of device, from remoteIP) as used until
// expires and reports whether it was new; full says none can be recorded
// now, for anyone or for this address.
func (s *seenSignatures) first(remoteIP, device, signature string, expires, now time.Time) (fresh, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen, s.byAddr = map[string]seenUse{}, map[string]int{}
	}
	key, addr := device+"\x00"+signature, addrKey(remoteIP)
	if use, ok := s.seen[key]; ok && now.Before(use.until) {
		return false, false
	}
	if len(s.seen) >= maxSeenSignatures || s.byAddr[addr] >= maxSeenPerAddress {
		if now.Sub(s.swept) < time.Second {
			return false, true
		}
		s.swept = now
		for k, use := range s.seen {
			if !now.Before(use.until) {
				s.forget(k, use)
			}
		}
		if len(s.seen) >= maxSeenSignatures || s.byAddr[addr] >= maxSeenPerAddress {
			return false, true
		}
	}
	if old, ok := s.seen[key]; ok {
		s.forget(key, old) // expired: taken anew below
	}
	s.seen[key] = seenUse{until: expires, addr: addr}
	s.byAddr[addr]++
	return true, false
}

func (s *seenSignatures) forget(key string, use seenUse) {
	delete(s.seen, key)
	if s.byAddr[use.addr]--; s.byAddr[use.addr] <= 0 {
		delete(s.byAddr, use.addr)
	}
}

package ws

import (
	"fmt"
	"testing"
	"time"
)

// A signature is new once; full of fresh ones, the map refuses rather
// than forget one, and takes again once some have expired.
func TestSeenSignatures(t *testing.T) {
	var s seenSignatures
	now := time.Unix(1000, 0)
	if fresh, _ := s.first("192.0.2.1", "d", "sig", now.Add(time.Minute), now); !fresh {
		t.Fatal("a first use is not fresh")
	}
	if fresh, full := s.first("192.0.2.1", "d", "sig", now.Add(time.Minute), now); fresh || full {
		t.Fatal("a second use is fresh")
	}
	for i := len(s.seen); i < maxSeenSignatures; i++ {
		s.first(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "d", fmt.Sprint(i), now.Add(time.Minute), now)
	}
	if _, full := s.first("192.0.2.1", "d", "one more", now.Add(time.Minute), now); !full {
		t.Fatal("a full map took another signature")
	}
	later := now.Add(2 * time.Minute) // every signature expired
	if fresh, full := s.first("192.0.2.1", "d", "one more", later.Add(time.Minute), later); !fresh || full {
		t.Fatalf("after the expiry: fresh %v full %v", fresh, full)
	}
	if fresh, _ := s.first("192.0.2.1", "d", "sig", later.Add(time.Minute), later); !fresh {
		t.Fatal("an expired signature is still remembered (it cannot verify again anyway)")
	}
}

// One address (or IPv6 /64) fills its share only: an outside attack filled
// the whole map from one address, and v1 nodes everywhere were refused.
func TestSeenSignaturesShareByAddress(t *testing.T) {
	var s seenSignatures
	now := time.Unix(1000, 0)
	for i := range maxSeenPerAddress {
		// A /64 is one share, whichever of its addresses signs.
		if fresh, full := s.first(fmt.Sprintf("2001:db8::%x", i), "d", fmt.Sprint(i), now.Add(time.Minute), now); !fresh || full {
			t.Fatalf("signature %d of the /64: fresh %v full %v", i, fresh, full)
		}
	}
	if _, full := s.first("2001:db8::ffff", "d", "over", now.Add(time.Minute), now); !full {
		t.Fatal("the /64 took more than its share")
	}
	if fresh, full := s.first("192.0.2.7", "d", "elsewhere", now.Add(time.Minute), now); !fresh || full {
		t.Fatalf("another address was refused: fresh %v full %v", fresh, full)
	}
	later := now.Add(2 * time.Minute)
	if fresh, full := s.first("2001:db8::1", "d", "after", later.Add(time.Minute), later); !fresh || full {
		t.Fatalf("the /64 after its signatures expired: fresh %v full %v", fresh, full)
	}
	if len(s.byAddr) != 1 || s.byAddr["2001:db8::/64"] != 1 { // the rest expired and were swept
		t.Fatalf("counts after the sweep: %v", s.byAddr)
	}
}

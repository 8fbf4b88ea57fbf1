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
	if fresh, _ := s.first("d", "sig", now.Add(time.Minute), now); !fresh {
		t.Fatal("a first use is not fresh")
	}
	if fresh, full := s.first("d", "sig", now.Add(time.Minute), now); fresh || full {
		t.Fatal("a second use is fresh")
	}
	for i := len(s.seen); i < maxSeenSignatures; i++ {
		s.first("d", fmt.Sprint(i), now.Add(time.Minute), now)
	}
	if _, full := s.first("d", "one more", now.Add(time.Minute), now); !full {
		t.Fatal("a full map took another signature")
	}
	later := now.Add(2 * time.Minute) // every signature expired
	if fresh, full := s.first("d", "one more", later.Add(time.Minute), later); !fresh || full {
		t.Fatalf("after the expiry: fresh %v full %v", fresh, full)
	}
	if fresh, _ := s.first("d", "sig", later.Add(time.Minute), later); !fresh {
		t.Fatal("an expired signature is still remembered (it cannot verify again anyway)")
	}
}

package db

import (
	"context"
	"testing"
)

// A replicated store leaves checkpoints to Litestream; any other keeps
// SQLite's automatic checkpoint.
func TestReplicatedStoreRunsNoCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		replicated bool
		want       int
	}{{false, 1000}, {true, 0}} {
		opts := testOptions(t.TempDir(), newClock())
		opts.Replicated = tc.replicated
		s := openWith(t, opts)
		pairNode(t, s, "n1")
		var got int
		if err := s.write.QueryRowContext(context.Background(), `PRAGMA wal_autocheckpoint`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Fatalf("replicated %v: wal_autocheckpoint %d, want %d", tc.replicated, got, tc.want)
		}
	}
}

package db

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for the store.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.UnixMilli(1795626734109)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testOptions(dir string, clk *testClock) Options {
	return Options{
		Path:    filepath.Join(dir, "pairing.sqlite"),
		KeyPath: filepath.Join(dir, "pairing.key"),
		Now:     clk.Now,
		Migrate: true,
	}
}

// openStore opens a fresh store in its own temporary directory.
func openStore(t testing.TB, clk *testClock) *Store {
	t.Helper()
	return openStoreAt(t, t.TempDir(), clk)
}

func openStoreAt(t testing.TB, dir string, clk *testClock) *Store {
	t.Helper()
	return openWith(t, testOptions(dir, clk))
}

// openNewKey opens the store in dir as `pairgate new-key` does: with a
// new pairing.key where the old one is lost.
func openNewKey(t testing.TB, dir string, clk *testClock) *Store {
	t.Helper()
	opts := testOptions(dir, clk)
	opts.NewKey = true
	return openWith(t, opts)
}

// storeWithLostKey is a store that paired nodeID, then lost pairing.key
// and got a new one (pairgate new-key): the node still verifies, but its
// token can no longer be unsealed for export.
func storeWithLostKey(t testing.TB, nodeID string) *Store {
	t.Helper()
	dir := t.TempDir()
	s := openStoreAt(t, dir, newClock())
	pairNode(t, s, nodeID)
	s.Close()
	if err := os.Remove(filepath.Join(dir, "pairing.key")); err != nil {
		t.Fatal(err)
	}
	return openNewKey(t, dir, newClock())
}

func openWith(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	ctx   = context.Background()
	byCLI = Origin{Actor: "cli"}
)

func mustRequest(t testing.TB, s *Store, in RequestInput) RequestResult {
	t.Helper()
	res, err := s.Request(ctx, in, byCLI)
	if err != nil {
		t.Fatalf("request %q: %v", in.NodeID, err)
	}
	return res
}

func mustApprove(t testing.TB, s *Store, requestID string) Approval {
	t.Helper()
	a, err := s.Approve(ctx, requestID, byCLI)
	if err != nil {
		t.Fatalf("approve %s: %v", requestID, err)
	}
	return a
}

// pairNode requests and approves a node, returning its token.
func pairNode(t testing.TB, s *Store, nodeID string) string {
	t.Helper()
	return mustApprove(t, s, mustRequest(t, s, RequestInput{NodeID: nodeID}).Request.RequestID).Node.Token
}

func allEvents(t testing.TB, s *Store) []Event {
	t.Helper()
	evs, err := s.EventsAfter(ctx, 0, 1_000_000)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	return evs
}

func eventNames(evs []Event) []string {
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = e.Name
		if e.Name == EventResolved {
			var r Resolution
			json.Unmarshal(e.Payload, &r)
			names[i] += ":" + r.Decision
		}
	}
	return names
}

func wantCode(t testing.TB, err error, code Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s error %q, got success", code, msg)
	}
	if got := ErrorCode(err); got != code {
		t.Fatalf("want code %s, got %s (%v)", code, got, err)
	}
	if msg != "" && ErrorMessage(err) != msg {
		t.Fatalf("want message %q, got %q", msg, ErrorMessage(err))
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

package ws

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pairgate/pairgate/server/rpc"
)

// heldNode is a node session held for its request, opened in h.
func heldNode(h *Hub, nodeID string) *conn {
	c := &conn{hub: h, sess: rpc.Session{Role: rpc.RoleNode, NodeID: nodeID}}
	h.conns[c] = true
	return c
}

// A session leaves every request it awaited, and only its own place in
// each: the others waiting for the same request keep theirs, a request
// nobody awaits any more is forgotten, and a session's own list drops the
// requests already resolved.
func TestHubRemoveLeavesOnlyItsAwaits(t *testing.T) {
	h := New(Options{}).NewHub(&rpc.Profile{Name: "p"})
	a, b, c := heldNode(h, "a"), heldNode(h, "b"), heldNode(h, "c")
	h.awaitResolution(a, "r1")
	h.awaitResolution(b, "r1")
	h.awaitResolution(a, "r1") // again: counted once
	h.awaitResolution(c, "r3")
	if len(a.awaits) != 1 {
		t.Fatalf("a awaits %v, want [r1]", a.awaits)
	}

	// r1 resolved (deliver takes it out), then a awaits a new request.
	h.mu.Lock()
	delete(h.awaiting, "r1")
	h.mu.Unlock()
	h.awaitResolution(a, "r2")
	if !slices.Equal(a.awaits, []string{"r2"}) {
		t.Fatalf("a awaits %v, want [r2]: r1 was resolved", a.awaits)
	}
	h.awaitResolution(b, "r2")

	h.remove(a)
	if got := h.awaiting["r2"]; !slices.Equal(got, []*conn{b}) {
		t.Fatalf("r2 awaited by %d sessions after a left, want b only", len(got))
	}
	h.remove(b)
	if _, ok := h.awaiting["r2"]; ok {
		t.Fatal("r2 still listed with nobody awaiting it")
	}
	if got := h.awaiting["r3"]; !slices.Equal(got, []*conn{c}) {
		t.Fatal("c's request lost when other sessions left")
	}
	h.remove(c)
	if len(h.awaiting) != 0 || len(h.conns) != 0 {
		t.Fatalf("after every session left: %d awaited requests, %d connections", len(h.awaiting), len(h.conns))
	}
}

// BenchmarkHubRemoveHeld takes n held node sessions, each awaiting its own
// request, out of their hub: what tearing them down costs the hub's lock.
func BenchmarkHubRemoveHeld(b *testing.B) {
	for _, n := range []int{1000, 4096, 18000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				h := New(Options{}).NewHub(&rpc.Profile{Name: "p"})
				conns := make([]*conn, n)
				for i := range conns {
					conns[i] = heldNode(h, fmt.Sprint("node-", i))
					h.awaitResolution(conns[i], fmt.Sprint("request-", i))
				}
				b.StartTimer()
				for _, c := range conns {
					h.remove(c)
				}
			}
		})
	}
}

package db

import (
	"encoding/json"
	"testing"
	"time"
)

// node.connected audit rows are coalesced per node: at most one every
// ConnectLogEvery, while lastConnectedAtMs follows every connect.
func TestConnectAuditIsCoalescedPerNode(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	pairNode(t, s, "a")
	pairNode(t, s, "b")
	connected := func() map[string]int {
		n := map[string]int{}
		for _, e := range allEvents(t, s) {
			if e.Name == EventConnected {
				var c Connection
				if err := json.Unmarshal(e.Payload, &c); err != nil {
					t.Fatal(err)
				}
				n[c.NodeID]++
			}
		}
		return n
	}
	by := Origin{Actor: "ws", Source: "192.0.2.1"}
	// 24 connects a second for 59 s from a, and b once a second.
	for ms := 0; ms < 59_000; ms += 1000 {
		for range 24 {
			if err := s.MarkConnected(ctx, "a", "192.0.2.1", by); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.MarkConnected(ctx, "b", "192.0.2.2", by); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if got := connected(); got["a"] != 1 || got["b"] != 1 {
		t.Fatalf("connected rows after 59 s = %v, want one per node", got)
	}
	if n, _ := s.Node(ctx, "a"); n.LastConnectedAtMs != clk.Now().Add(-time.Second).UnixMilli() {
		t.Fatalf("lastConnectedAtMs = %d, want the last connect's time", n.LastConnectedAtMs)
	}
	clk.Advance(time.Second) // a minute after the first row
	s.MarkConnected(ctx, "a", "192.0.2.1", by)
	if got := connected(); got["a"] != 2 {
		t.Fatalf("a minute later: %v, want a second row for a", got)
	}
	// A repair approval resets it: the new token's first connect is logged.
	mustApprove(t, s, mustRequest(t, s, RequestInput{NodeID: "b"}).Request.RequestID)
	s.MarkConnected(ctx, "b", "192.0.2.2", by)
	if got := connected(); got["b"] != 2 {
		t.Fatalf("after a repair: %v, want a second row for b", got)
	}
	err := s.MarkConnected(ctx, "gone", "", by)
	wantCode(t, err, CodeNotFound, "unknown nodeId")
}

package db

import (
	"slices"
	"testing"
	"time"
)

// connectAs is a node connect of device id with key, presenting tokens.
func connectAs(id, key string, tokens ...string) NodeConnect {
	return NodeConnect{NodeID: id, PublicKey: key, Tokens: tokens,
		NodeMeta: NodeMeta{DisplayName: "Host", Platform: "linux", Caps: []string{"system"}, RemoteIP: "192.0.2.7"}}
}

func mustAdmit(t *testing.T, s *Store, in NodeConnect) Admission {
	t.Helper()
	a, err := s.AdmitNode(ctx, in, Origin{Actor: "node"})
	if err != nil {
		t.Fatalf("admit %s: %v", in.NodeID, err)
	}
	return a
}

func TestAdmitNodePairsAtConnect(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)

	// Unpaired: a pending request with the connect's metadata and key.
	first := mustAdmit(t, s, connectAs("dev1", "KEY1"))
	if first.Paired || !first.Created || first.Request == nil || first.Request.NodeID != "dev1" ||
		first.Request.DisplayName != "Host" || first.Request.RemoteIP != "192.0.2.7" || first.Request.PublicKey != "KEY1" || first.Request.IsRepair {
		t.Fatalf("first connect %+v %+v", first, first.Request)
	}
	// Again while pending: the same request, nothing written.
	again := mustAdmit(t, s, connectAs("dev1", "KEY1"))
	if again.Created || again.Request.RequestID != first.Request.RequestID {
		t.Fatalf("repeat connect %+v", again)
	}
	if got := eventNames(allEvents(t, s)); !slices.Equal(got, []string{EventRequested}) {
		t.Fatalf("events %v", got)
	}

	// Approval pins the key; a connect signed by it is handed the token.
	approval := mustApprove(t, s, first.Request.RequestID)
	if approval.Node.PublicKey != "KEY1" {
		t.Fatalf("approval did not pin the key: %+v", approval.Node)
	}
	clk.Advance(time.Second)
	paired := mustAdmit(t, s, connectAs("dev1", "KEY1"))
	if !paired.Paired || paired.Token != approval.Node.Token || paired.IssuedAtMs != approval.Node.ApprovedAtMs || paired.Request != nil {
		t.Fatalf("paired connect %+v", paired)
	}
	// The token verifies as the node's token, presented either way.
	for _, tokens := range [][]string{{approval.Node.Token}, {"", approval.Node.Token}, {approval.Node.Token, approval.Node.Token}} {
		if a := mustAdmit(t, s, connectAs("dev1", "KEY1", tokens...)); !a.Paired || a.Token != approval.Node.Token {
			t.Fatalf("connect with %q: %+v", tokens, a)
		}
	}
	if v, _ := s.Verify(ctx, "dev1", approval.Node.Token); !v.OK {
		t.Fatal("the node token does not verify")
	}
	n, _ := s.Node(ctx, "dev1")
	if n.LastConnectedAtMs != clk.Now().UnixMilli() {
		t.Fatalf("lastConnectedAtMs %d", n.LastConnectedAtMs)
	}

	// A stale token signed by the pinned key: the key proves the device,
	// which gets its current token.
	if stale := mustAdmit(t, s, connectAs("dev1", "KEY1", "stale")); !stale.Paired || stale.Token != approval.Node.Token {
		t.Fatalf("stale token, pinned key %+v", stale)
	}
	// Removed: its token is refused, and a new request waits for approval.
	if _, err := s.Remove(ctx, "dev1", byCLI); err != nil {
		t.Fatal(err)
	}
	wrong := mustAdmit(t, s, connectAs("dev1", "KEY1", approval.Node.Token))
	if wrong.Paired || !wrong.Mismatch || wrong.Request == nil || wrong.Request.IsRepair || wrong.Request.RequestID == first.Request.RequestID {
		t.Fatalf("removed node's token %+v", wrong)
	}
}

func TestAdmitNodeOnlyGivesTheTokenToThePinnedKey(t *testing.T) {
	s := openStore(t, newClock())
	// Paired through node.pair.request: no key pinned.
	token := pairNode(t, s, "legacy")
	// Its token still admits it, but hello-ok gets no token to hand out.
	if a := mustAdmit(t, s, connectAs("legacy", "KEY", token)); !a.Paired || a.Token != "" {
		t.Fatalf("token connect of an unpinned node %+v", a)
	}
	// Without the token, a signature alone is a repair to approve.
	repair := mustAdmit(t, s, connectAs("legacy", "KEY"))
	if repair.Paired || !repair.Created || !repair.Request.IsRepair {
		t.Fatalf("key-only connect of an unpinned node %+v", repair)
	}
	if v, _ := s.Verify(ctx, "legacy", token); !v.OK {
		t.Fatal("the repair request disturbed the pairing")
	}
	// Approving it pins the key and rotates the token.
	a := mustApprove(t, s, repair.Request.RequestID)
	if got := mustAdmit(t, s, connectAs("legacy", "KEY")); !got.Paired || got.Token != a.Node.Token {
		t.Fatalf("after repair approval %+v", got)
	}
	if v, _ := s.Verify(ctx, "legacy", token); v.OK {
		t.Fatal("the old token survived the repair")
	}
	// Another key for the same id is not the pinned one: approval again,
	// and a wrong token with it is refused.
	if other := mustAdmit(t, s, connectAs("legacy", "OTHER")); other.Paired || other.Request == nil {
		t.Fatalf("another key %+v", other)
	}
	if other := mustAdmit(t, s, connectAs("legacy", "OTHER", token)); other.Paired || !other.Mismatch {
		t.Fatalf("another key with the old token %+v", other)
	}
}

func TestAdmitNodeRejectionAndExpiry(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	a := mustAdmit(t, s, connectAs("dev", "K"))
	if _, err := s.Reject(ctx, a.Request.RequestID, byCLI); err != nil {
		t.Fatal(err)
	}
	b := mustAdmit(t, s, connectAs("dev", "K"))
	if !b.Created || b.Request.RequestID == a.Request.RequestID {
		t.Fatalf("after rejection: %+v", b)
	}
	clk.Advance(6 * time.Minute)
	c := mustAdmit(t, s, connectAs("dev", "K"))
	if !c.Created || c.Request.RequestID == b.Request.RequestID {
		t.Fatalf("after expiry: %+v", c)
	}
	if _, err := s.AdmitNode(ctx, connectAs("", "K"), byCLI); ErrorCode(err) != CodeInvalid {
		t.Fatalf("blank device id: %v", err)
	}
}

func TestAdoptRequestCompletesTheConnectsRequest(t *testing.T) {
	s := openStore(t, newClock())
	opened := mustAdmit(t, s, connectAs("dev", "K"))
	silent := true
	res, err := s.AdoptRequest(ctx, opened.Request.RequestID,
		RequestInput{NodeID: "dev", NodeMeta: NodeMeta{DisplayName: "Renamed"}, Silent: &silent}, byCLI)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Request.RequestID != opened.Request.RequestID || res.Request.DisplayName != "Renamed" ||
		res.Request.Silent == nil || !*res.Request.Silent {
		t.Fatalf("adopted %+v", res)
	}
	// The key stays on the request, so approval pins it.
	if a := mustApprove(t, s, res.Request.RequestID); a.Node.PublicKey != "K" {
		t.Fatalf("approval of an adopted request: %+v", a.Node)
	}
	// A request no longer pending is not adopted: an ordinary request.
	again, err := s.AdoptRequest(ctx, opened.Request.RequestID, RequestInput{NodeID: "dev"}, byCLI)
	if err != nil || !again.Created || again.Request.RequestID == opened.Request.RequestID || !again.Request.IsRepair {
		t.Fatalf("adopting a decided request: %+v %v", again, err)
	}
}

func TestApproveNamedRenamesInTheSameTransaction(t *testing.T) {
	s := openStore(t, newClock())
	id := mustRequest(t, s, RequestInput{NodeID: "n", NodeMeta: NodeMeta{DisplayName: "Old"}}).Request.RequestID
	if _, err := s.ApproveNamed(ctx, id, "   ", byCLI); ErrorCode(err) != CodeInvalid {
		t.Fatalf("blank name: %v", err)
	}
	a, err := s.ApproveNamed(ctx, id, " Kitchen ", byCLI)
	if err != nil || a.Node.DisplayName != "Kitchen" {
		t.Fatalf("approve named: %+v %v", a, err)
	}
	// An operator's name: it survives a repair approval.
	a2 := mustApprove(t, s, mustRequest(t, s, RequestInput{NodeID: "n", NodeMeta: NodeMeta{DisplayName: "Other"}}).Request.RequestID)
	if a2.Node.DisplayName != "Kitchen" {
		t.Fatalf("name after repair: %q", a2.Node.DisplayName)
	}
}

func TestAdmitNodeKeysARequestMadeForIt(t *testing.T) {
	s := openStore(t, newClock())
	// An operator asked for this node before it connected.
	asked := mustRequest(t, s, RequestInput{NodeID: "dev"})
	a := mustAdmit(t, s, connectAs("dev", "K"))
	if a.Created || a.Request.RequestID != asked.Request.RequestID || a.Request.PublicKey != "K" {
		t.Fatalf("connect after an operator's request %+v", a)
	}
	// So its approval pins the key, and the host's reconnect is paired.
	mustApprove(t, s, asked.Request.RequestID)
	if got := mustAdmit(t, s, connectAs("dev", "K")); !got.Paired || got.Token == "" {
		t.Fatalf("after approval %+v", got)
	}
}

// A repair request that carries no key (a v1 or legacy connect, an
// operator's request) proves no device: its approval keeps the key pinned
// before, so the device collects the new token at its next connect and a
// replayer of an old unsigned request does not unpin it. A request with
// another key pins that one.
func TestApprovalWithoutAKeyKeepsThePinnedOne(t *testing.T) {
	s := openStore(t, newClock())
	first := mustAdmit(t, s, connectAs("dev1", "KEY1"))
	mustApprove(t, s, first.Request.RequestID)

	repair := mustRequest(t, s, RequestInput{NodeID: "dev1"})
	if !repair.Request.IsRepair || repair.Request.PublicKey != "" {
		t.Fatalf("repair request %+v", repair.Request)
	}
	a := mustApprove(t, s, repair.Request.RequestID)
	if a.Node.PublicKey != "KEY1" {
		t.Fatalf("a keyless repair's approval answered key %q, want KEY1 kept", a.Node.PublicKey)
	}
	if n, err := s.Node(ctx, "dev1"); err != nil || n.PublicKey != "KEY1" {
		t.Fatalf("after a keyless repair: %+v, %v", n, err)
	}
	if got := mustAdmit(t, s, connectAs("dev1", "KEY1")); !got.Paired || got.Token != a.Node.Token {
		t.Fatalf("the device's connect after the repair: %+v", got)
	}

	rekey := mustAdmit(t, s, connectAs("dev1", "KEY2"))
	if rekey.Request == nil || rekey.Request.PublicKey != "KEY2" {
		t.Fatalf("a connect with another key: %+v", rekey)
	}
	if a := mustApprove(t, s, rekey.Request.RequestID); a.Node.PublicKey != "KEY2" {
		t.Fatalf("approving another key pinned %q", a.Node.PublicKey)
	}
}

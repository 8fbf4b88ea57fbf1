package server

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/rpc"
)

// atDir serves the one profile "default" from dir, so that a second
// server on the same dir is a restart.
func atDir(dir string) func(*serverSetup) {
	return func(s *serverSetup) {
		def := config.NewProfile("default", filepath.Join(dir, "default"))
		def.Token = testToken
		s.cfg.Profiles = []config.Profile{def}
	}
}

func pendingOver(t *testing.T, ts *testServer) []db.PendingRequest {
	t.Helper()
	var out struct{ Pending []db.PendingRequest }
	ts.mustAPI(t, 200, "GET", base+"/pending", "", &out)
	return out.Pending
}

func verifiesOver(t *testing.T, ts *testServer, nodeID, token string) bool {
	t.Helper()
	var v db.Verification
	body, _ := json.Marshal(map[string]string{"nodeId": nodeID, "token": token})
	ts.mustAPI(t, 200, "POST", base+"/verify", string(body), &v)
	return v.OK
}

// helloGrant is hello-ok's auth member as OpenClaw's node hosts read it.
type helloGrant struct {
	DeviceToken string   `json:"deviceToken"`
	Role        string   `json:"role"`
	Scopes      []string `json:"scopes"`
	IssuedAtMs  int64    `json:"issuedAtMs"`
}

// helloAuthOf decodes hello-ok's auth member (nil when absent).
func helloAuthOf(t *testing.T, f frame) *helloGrant {
	t.Helper()
	if !f.OK {
		t.Fatalf("connect refused: %+v", f.Error)
	}
	var h struct{ Auth *helloGrant }
	if err := json.Unmarshal(f.Payload, &h); err != nil {
		t.Fatalf("hello-ok: %v", err)
	}
	return h.Auth
}

func TestNodeHostPairsAtConnectEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, atDir(dir))
	op := ts.operator(t, "/", testToken, "operator.pairing")
	d := newDevice()

	// An unpaired host: hello-ok without a token, its session held, and a
	// pending request with nodeId = device id and the connect's metadata.
	held, hello := ts.dialHost(t, d, hostConnect{displayName: "Build Box", family: "Desktop"})
	if a := helloAuthOf(t, hello); a != nil {
		t.Fatalf("an unpaired node was handed a token: %+v", a)
	}
	pending := pendingOver(t, ts)
	if len(pending) != 1 {
		t.Fatalf("pending %+v", pending)
	}
	req := pending[0]
	if req.NodeID != d.id || req.DisplayName != "Build Box" || req.Platform != "linux" || req.DeviceFamily != "Desktop" ||
		req.Version != "2026.9.6" || req.Caps[0] != "system" || req.Commands[0] != "system.run" ||
		req.Permissions == nil || req.RemoteIP != "127.0.0.1" || req.IsRepair {
		t.Fatalf("request %+v", req)
	}
	if want := "msg=\"node asks to pair at connect\" profile=default remote=127.0.0.1 node=" + d.id + " requestId=" + req.RequestID; !strings.Contains(ts.log.String(), want) {
		t.Fatalf("log lacks %s:\n%s", want, ts.log)
	}
	ev := op.event(db.EventRequested, 5*time.Second)
	if !strings.Contains(string(ev.Payload), req.RequestID) || ev.Seq == 0 {
		t.Fatalf("requested event %s", ev.Payload)
	}
	// A second connect of the same host finds the same request.
	again, _ := ts.dialHost(t, d, hostConnect{})
	if p := pendingOver(t, ts); len(p) != 1 || p[0].RequestID != req.RequestID {
		t.Fatalf("pending after a repeat connect %+v", p)
	}

	// Approval over REST: every held session is told to reconnect (1012).
	var approval db.Approval
	ts.mustAPI(t, 200, "POST", base+"/requests/"+req.RequestID+"/approve", "", &approval)
	for _, c := range []*wsClient{held, again} {
		if code := c.waitClosed(5 * time.Second); code != websocket.CloseServiceRestart {
			t.Fatalf("held session closed %d, want 1012", code)
		}
	}

	// The reconnect, signed by the pinned key, gets the node token.
	paired, hello := ts.dialHost(t, d, hostConnect{})
	grant := helloAuthOf(t, hello)
	if grant == nil || grant.DeviceToken != approval.Node.Token || grant.Role != "node" || grant.Scopes == nil ||
		len(grant.Scopes) != 0 || grant.IssuedAtMs != approval.Node.ApprovedAtMs {
		t.Fatalf("hello-ok auth %+v, want the approval's token", grant)
	}
	if raw := string(hello.Payload); !strings.Contains(raw, `"auth":{"deviceToken":"`) || !strings.Contains(raw, `"scopes":[]`) {
		t.Fatalf("hello-ok %s", raw)
	}
	var list db.NodeList
	op.mustCall("node.list", map[string]any{}, &list)
	if len(list.Nodes) != 1 || !list.Nodes[0].Connected || list.Nodes[0].NodeID != d.id {
		t.Fatalf("node.list %+v", list)
	}
	if !verifiesOver(t, ts, d.id, grant.DeviceToken) {
		t.Fatal("the handed token does not verify over REST")
	}
	paired.conn.Close()

	// The token comes back as auth.token (before 2026.2.22), both, or
	// auth.deviceToken (2026.9).
	for _, h := range []hostConnect{{token: grant.DeviceToken}, {token: grant.DeviceToken, deviceToken: grant.DeviceToken},
		{deviceToken: grant.DeviceToken}, {sig: "v2", min: 3, max: 3, token: grant.DeviceToken}} {
		c, hello := ts.dialHost(t, d, h)
		if a := helloAuthOf(t, hello); a == nil || a.DeviceToken != grant.DeviceToken {
			t.Fatalf("connect %+v: auth %+v", h, a)
		}
		c.conn.Close()
	}
	// Nor does a v1 signature, which binds no challenge and could be a
	// replay: it gets no token (and asks for approval of a key).
	if c, hello := ts.dialHost(t, d, hostConnect{sig: "v1"}); helloAuthOf(t, hello) != nil {
		t.Fatal("a v1 (replayable) connect was handed the token")
	} else {
		c.conn.Close()
	}
	// Nobody else gets it: an operator's hello-ok has no auth.
	if _, hello := ts.dialHost(t, newDevice(), hostConnect{role: "operator", clientID: "cli", clientMode: "cli", token: testToken}); helloAuthOf(t, hello) != nil {
		t.Fatal("an operator was handed a token")
	}

	// A restart keeps all of it.
	ts.stop()
	ts = startServer(t, atDir(dir))
	if c, hello := ts.dialHost(t, d, hostConnect{deviceToken: grant.DeviceToken}); helloAuthOf(t, hello) == nil {
		t.Fatal("after a restart the host is not paired")
	} else {
		c.conn.Close()
	}
	if !verifiesOver(t, ts, d.id, grant.DeviceToken) {
		t.Fatal("after a restart the token does not verify")
	}

	// A stale token (from before a repair) signed by the pinned key: the
	// key proves the host, which is handed its current token.
	if c, hello := ts.dialHost(t, d, hostConnect{deviceToken: "stale-token"}); helloAuthOf(t, hello).DeviceToken != grant.DeviceToken {
		t.Fatal("a stale token with the pinned key did not get the current one")
	} else {
		c.conn.Close()
	}

	// Removed: its token is refused as upstream refuses an unpaired
	// device, and it is sent back through approval.
	ts.mustAPI(t, 204, "DELETE", base+"/nodes/"+d.id, "", nil)
	c, hello := ts.dialHost(t, d, hostConnect{deviceToken: grant.DeviceToken})
	if hello.OK || hello.Error.Code != rpc.CodeNotPaired || hello.Error.Message != "pairing required: device is not approved yet" {
		t.Fatalf("removed node's token: %+v", hello)
	}
	var details struct {
		Code, Reason, RequestID, DeviceID, RequestedRole string
		RequestedScopes                                  []string
	}
	b, _ := json.Marshal(hello.Error.Details)
	json.Unmarshal(b, &details)
	renewed := pendingOver(t, ts)
	if len(renewed) != 1 || details.Code != "PAIRING_REQUIRED" || details.Reason != "not-paired" || details.RequestID != renewed[0].RequestID ||
		details.DeviceID != d.id || details.RequestedRole != "node" || details.RequestedScopes == nil {
		t.Fatalf("details %s, pending %+v", b, renewed)
	}
	if code := c.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation ||
		c.closeText.Load() != "pairing required: device is not approved yet (requestId: "+renewed[0].RequestID+")" {
		t.Fatalf("close %d %q", code, c.closeText.Load())
	}
	if verifiesOver(t, ts, d.id, grant.DeviceToken) {
		t.Fatal("a removed node's token verifies")
	}

	// A new key is a new device: back to approval, the old one untouched.
	other := newDevice()
	if _, hello := ts.dialHost(t, other, hostConnect{token: grant.DeviceToken}); hello.OK {
		t.Fatal("another device got in with this node's token")
	}
	if p := pendingOver(t, ts); len(p) != 2 {
		t.Fatalf("pending %+v", p)
	}
}

func TestNodePairedWithoutKeyGoesBackThroughApproval(t *testing.T) {
	ts := startServer(t)
	d := newDevice()
	// Paired by an operator's node.pair.request: no key pinned.
	var res db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"`+d.id+`"}`, &res)
	var approval db.Approval
	ts.mustAPI(t, 200, "POST", base+"/requests/"+res.Request.RequestID+"/approve", "", &approval)

	// Its token still admits it, without being handed back.
	c, hello := ts.dialHost(t, d, hostConnect{token: approval.Node.Token})
	if helloAuthOf(t, hello) != nil {
		t.Fatal("a node paired without a key was handed its token")
	}
	c.conn.Close()
	// Without the token, its key alone asks for approval (a repair).
	held, hello := ts.dialHost(t, d, hostConnect{})
	if helloAuthOf(t, hello) != nil {
		t.Fatal("a signature alone was handed the token")
	}
	p := pendingOver(t, ts)
	if len(p) != 1 || !p[0].IsRepair || p[0].NodeID != d.id {
		t.Fatalf("pending %+v", p)
	}
	ts.mustAPI(t, 200, "POST", base+"/requests/"+p[0].RequestID+"/approve", "", nil)
	if code := held.waitClosed(5 * time.Second); code != websocket.CloseServiceRestart {
		t.Fatalf("held session closed %d", code)
	}
	if _, hello := ts.dialHost(t, d, hostConnect{}); helloAuthOf(t, hello) == nil {
		t.Fatal("after the repair approval the key is not pinned")
	}
}

func TestRejectedHostAsksAgain(t *testing.T) {
	ts := startServer(t)
	d := newDevice()
	held, _ := ts.dialHost(t, d, hostConnect{})
	p := pendingOver(t, ts)
	ts.mustAPI(t, 200, "POST", base+"/requests/"+p[0].RequestID+"/reject", "", nil)
	ev := held.event(db.EventResolved, 5*time.Second)
	if !strings.Contains(string(ev.Payload), `"decision":"rejected"`) {
		t.Fatalf("private resolution %s", ev.Payload)
	}
	if _, hello := ts.dialHost(t, d, hostConnect{}); helloAuthOf(t, hello) != nil {
		t.Fatal("a rejected host got a token")
	}
	if again := pendingOver(t, ts); len(again) != 1 || again[0].RequestID == p[0].RequestID {
		t.Fatalf("after rejection %+v", again)
	}
}

func TestHeldHostAsksAgainWhenItsRequestExpires(t *testing.T) {
	ts := startServer(t)
	d := newDevice()
	now := time.Now()
	ts.clock.Pin(now)
	held, _ := ts.dialHost(t, d, hostConnect{})
	first := pendingOver(t, ts)
	ts.clock.Pin(now.Add(6 * time.Minute)) // past the 5-minute TTL: the sweeper expires it
	if code := held.waitClosed(10 * time.Second); code != websocket.CloseServiceRestart {
		t.Fatalf("held session closed %d, want 1012", code)
	}
	ts.dialHost(t, d, hostConnect{})
	if again := pendingOver(t, ts); len(again) != 1 || again[0].RequestID == first[0].RequestID {
		t.Fatalf("after expiry %+v (was %+v)", again, first)
	}
}

// A v1 signature binds no challenge: sent again on another connection
// within its window (a captured connect frame, its unsigned fields
// changed or not) it is refused, so the replayer never holds a session
// as the device and is never handed its token on approval. A fresh v1
// signature (a reconnect signs anew) is accepted.
func TestV1ConnectFrameIsNotReplayable(t *testing.T) {
	ts := startServer(t)
	d := newDevice()
	params := d.connect("", hostConnect{sig: "v1"})
	first, err := dialWS(t, ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	first.challenge()
	if f := first.call("connect", params); !f.OK {
		t.Fatalf("first use of a v1 connect refused: %+v", f.Error)
	}
	for _, tamper := range []func(map[string]any){
		func(map[string]any) {},
		func(p map[string]any) { p["client"].(map[string]any)["displayName"] = "d2 (needs repair)" },
	} {
		tamper(params)
		again, err := dialWS(t, ts.ws+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		again.challenge()
		if f := again.call("connect", params); f.OK || !strings.Contains(f.Error.Message, "device signature already used") {
			t.Fatalf("a replayed v1 connect: %+v", f)
		}
	}
	time.Sleep(2 * time.Millisecond) // a new signedAt: another signature
	if c, hello := ts.dialHost(t, d, hostConnect{sig: "v1"}); !hello.OK {
		t.Fatalf("a fresh v1 connect of the same device refused: %+v", hello.Error)
	} else {
		c.conn.Close()
	}
}

func TestV1NodeIsNotToldToReconnectForATokenItCannotCollect(t *testing.T) {
	ts := startServer(t)
	d := newDevice()
	c, _ := ts.dialHost(t, d, hostConnect{sig: "v1"})
	h := ts.byName["default"].hub
	held := func(requestID string) bool {
		return slices.ContainsFunc(h.Sessions(), func(s rpc.Session) bool { return s.PendingRequest == requestID })
	}
	opened := pendingOver(t, ts)
	if len(opened) != 1 || held(opened[0].RequestID) {
		t.Fatalf("a v1 session is held for %+v", opened)
	}
	// (A v3 connect is.)
	ts.dialHost(t, newDevice(), hostConnect{})
	for _, r := range pendingOver(t, ts) {
		if r.NodeID != d.id && !held(r.RequestID) {
			t.Fatal("a v3 session is not held")
		}
	}
	// It asks itself, completing the request its connect opened.
	var res db.RequestResult
	c.mustCall("node.pair.request", map[string]any{"nodeId": d.id}, &res)
	if !res.Created || res.Request.RequestID != opened[0].RequestID {
		t.Fatalf("request %+v, opened %+v", res, opened)
	}
	ts.mustAPI(t, 200, "POST", base+"/requests/"+res.Request.RequestID+"/approve", "", nil)
	// It learns its token privately and stays connected (no 1012: a v1
	// reconnect could not collect the token from hello-ok).
	var got struct {
		db.Resolution
		Token string `json:"token"`
	}
	json.Unmarshal(c.event(db.EventResolved, 5*time.Second).Payload, &got)
	var v db.Verification
	c.mustCall("node.pair.verify", map[string]any{"nodeId": d.id, "token": got.Token}, &v)
	if got.Token == "" || !v.OK {
		t.Fatalf("private resolution %+v, verify %+v", got, v)
	}
}

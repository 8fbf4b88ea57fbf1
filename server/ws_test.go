package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/locktest"
	"github.com/pairgate/pairgate/server/rpc"
)

func TestHelloOK(t *testing.T) {
	ts := startServer(t)
	c, err := dialWS(t, ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.challenge()
	f := c.call("connect", connectFrame("operator", testToken, nil))
	if !f.OK {
		t.Fatalf("connect: %+v", f.Error)
	}
	var hello map[string]json.RawMessage
	json.Unmarshal(f.Payload, &hello)
	for _, k := range []string{"type", "protocol", "server", "features", "snapshot", "policy"} {
		if _, ok := hello[k]; !ok {
			t.Errorf("hello-ok lacks %q", k)
		}
	}
	if _, ok := hello["auth"]; ok {
		t.Fatalf("hello-ok must not carry auth (the CLI would swap in a device token)")
	}
	var h struct {
		Type     string
		Protocol int
		Policy   struct{ MaxPayload, TickIntervalMs int }
		Features struct{ Methods []string }
		Snapshot struct{ Presence []any }
	}
	json.Unmarshal(f.Payload, &h)
	if h.Type != "hello-ok" || h.Protocol != 3 || h.Policy.MaxPayload != 512<<10 || h.Policy.TickIntervalMs != 30000 ||
		len(h.Features.Methods) != len(rpc.Methods) || h.Snapshot.Presence == nil {
		t.Fatalf("hello-ok %s", f.Payload)
	}
	var health struct {
		OK bool  `json:"ok"`
		TS int64 `json:"ts"`
	}
	c.mustCall("health", map[string]any{}, &health)
	if !health.OK || health.TS == 0 {
		t.Fatalf("health %+v", health)
	}
}

func TestNodePairsItselfEndToEnd(t *testing.T) {
	ts := startServer(t)
	op := ts.operator(t, "/", testToken, "operator.pairing")
	d := newDevice()

	// A pairing session: no token yet.
	n, hello := ts.node(t, d, "")
	if !hello.OK {
		t.Fatalf("node connect: %+v", hello.Error)
	}
	var req db.RequestResult
	n.mustCall("node.pair.request", map[string]any{"nodeId": d.id, "platform": "linux"}, &req)
	if !req.Created || req.Request.NodeID != d.id || req.Request.DisplayName != "Test Node" || req.Request.RemoteIP != "127.0.0.1" {
		t.Fatalf("request %+v (metadata must come from the connect, remoteIp from the socket)", req)
	}
	// A node may not ask for another node.
	if f := n.call("node.pair.request", map[string]any{"nodeId": "someone-else"}); f.OK || !strings.Contains(f.Error.Message, "own nodeId") {
		t.Fatalf("request for another node: %+v", f)
	}
	// Nor call operator methods.
	if f := n.call("node.pair.list", map[string]any{}); f.OK || f.Error.Message != "unauthorized role: node" {
		t.Fatalf("node calling list: %+v", f)
	}

	ev := op.event(db.EventRequested, 5*time.Second)
	var requested db.PendingRequest
	json.Unmarshal(ev.Payload, &requested)
	if requested.RequestID != req.Request.RequestID || ev.Seq == 0 {
		t.Fatalf("operator saw %+v seq %d", requested, ev.Seq)
	}

	var approval db.Approval
	op.mustCall("node.pair.approve", map[string]any{"requestId": req.Request.RequestID}, &approval)

	// The node learns its token privately; the operators' broadcast has none.
	private := n.event(db.EventResolved, 5*time.Second)
	var got struct {
		db.Resolution
		Token string `json:"token"`
	}
	json.Unmarshal(private.Payload, &got)
	if got.Decision != "approved" || got.Token != approval.Node.Token || got.Token == "" {
		t.Fatalf("private resolution %s, want the approval's token", private.Payload)
	}
	broadcast := op.event(db.EventResolved, 5*time.Second)
	if strings.Contains(string(broadcast.Payload), approval.Node.Token) || strings.Contains(string(broadcast.Payload), "token") {
		t.Fatalf("the broadcast carries a token: %s", broadcast.Payload)
	}

	// Reconnect as a paired session with the token: connected in node.list.
	paired, hello := ts.node(t, d, got.Token)
	if !hello.OK {
		t.Fatalf("paired connect: %+v", hello.Error)
	}
	var list db.NodeList
	op.mustCall("node.list", map[string]any{}, &list)
	if len(list.Nodes) != 1 || !list.Nodes[0].Connected || list.Nodes[0].ConnectedAtMs == 0 || !list.Nodes[0].Paired {
		t.Fatalf("node.list %+v", list)
	}
	var desc db.NodeDescription
	op.mustCall("node.describe", map[string]any{"nodeId": d.id}, &desc)
	if desc.NodeID != d.id || !desc.Connected || desc.TS == 0 || desc.Caps[0] != "canvas" {
		t.Fatalf("node.describe %+v", desc)
	}
	// A paired session may verify itself but no longer request.
	var v db.Verification
	paired.mustCall("node.pair.verify", map[string]any{"nodeId": d.id, "token": got.Token}, &v)
	if !v.OK {
		t.Fatal("paired node cannot verify itself")
	}
	if f := paired.call("node.pair.request", map[string]any{"nodeId": d.id}); f.OK || f.Error.Message != "unauthorized role: node" {
		t.Fatalf("paired session request: %+v", f)
	}

	// Removal: the token fails at once and the live session is dropped.
	op.mustCall("node.pair.remove", map[string]any{"nodeId": d.id}, nil)
	if code := paired.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
		t.Fatalf("removed node's session closed with %d", code)
	}
	op.mustCall("node.pair.verify", map[string]any{"nodeId": d.id, "token": got.Token}, &v)
	if v.OK {
		t.Fatal("removed node's token still verifies")
	}
	again, hello := ts.node(t, d, got.Token)
	if hello.OK || hello.Error.Code != rpc.CodeNotPaired {
		t.Fatalf("reconnect with a removed token: %+v", hello)
	}
	if code := again.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d", code)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	ts := startServer(t)
	d := newDevice()
	tamper := func(f func(p map[string]any)) func(nonce string) map[string]any {
		return func(nonce string) map[string]any {
			p := d.signedConnect(nonce, "", time.Now())
			f(p)
			return p
		}
	}
	cases := []struct {
		name    string
		params  func(nonce string) map[string]any
		message string
		close   int
	}{
		{"wrong protocol", func(string) map[string]any {
			p := connectFrame("operator", testToken, nil)
			p["minProtocol"], p["maxProtocol"] = 1, 2
			return p
		}, "protocol mismatch", websocket.CloseProtocolError},
		{"unknown key", func(string) map[string]any {
			p := connectFrame("operator", testToken, nil)
			p["bogus"] = 1
			return p
		}, "invalid connect params: at root: unexpected property 'bogus'", websocket.ClosePolicyViolation},
		{"missing client mode", func(string) map[string]any {
			p := connectFrame("operator", testToken, nil)
			delete(p["client"].(map[string]any), "mode")
			return p
		}, "invalid connect params: at /client: must have required property 'mode'", websocket.ClosePolicyViolation},
		{"wrong token", func(string) map[string]any { return connectFrame("operator", "nope", nil) },
			"unauthorized: gateway token mismatch", websocket.ClosePolicyViolation},
		{"bad signature", tamper(func(p map[string]any) { p["client"].(map[string]any)["mode"] = "other" }),
			"device signature invalid", websocket.ClosePolicyViolation},
		{"identity mismatch", tamper(func(p map[string]any) { p["device"].(map[string]any)["id"] = strings.Repeat("0", 64) }),
			"device identity mismatch", websocket.ClosePolicyViolation},
		{"nonce mismatch", tamper(func(p map[string]any) { p["device"].(map[string]any)["nonce"] = "other" }),
			"device nonce mismatch", websocket.ClosePolicyViolation},
		{"expired signature", func(nonce string) map[string]any { return d.signedConnect(nonce, "", time.Now().Add(-11*time.Minute)) },
			"device signature expired", websocket.ClosePolicyViolation},
		{"node without device", func(string) map[string]any { return connectFrame("node", "", nil) },
			"unauthorized: a node must present its device identity", websocket.ClosePolicyViolation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialWS(t, ts.ws+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			nonce := c.challenge()
			f := c.call("connect", tc.params(nonce))
			if f.OK || f.Error.Message != tc.message {
				t.Fatalf("connect = %+v, want %q", f.Error, tc.message)
			}
			if details := string(mustJSON(f.Error)); tc.message == "protocol mismatch" &&
				(!strings.Contains(details, `"code":"PROTOCOL_MISMATCH"`) || !strings.Contains(details, `"expectedProtocol":3`)) {
				t.Fatalf("protocol mismatch details: %s", mustJSON(f.Error))
			}
			if code := c.waitClosed(5 * time.Second); code != tc.close {
				t.Fatalf("close code %d, want %d", code, tc.close)
			}
			// The log says why, for the operator, and never with a token.
			if want := fmt.Sprintf("msg=\"websocket connect refused\" profile=default remote=127.0.0.1 reason=%q", tc.message); !strings.Contains(ts.log.String(), want) {
				t.Fatalf("log lacks %s:\n%s", want, ts.log)
			}
		})
	}
	if strings.Contains(ts.log.String(), testToken) || strings.Contains(ts.log.String(), "nope") {
		t.Fatalf("a token reached the log:\n%s", ts.log)
	}
}

func TestFirstFrameRules(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.HandshakeTimeout = 300 * time.Millisecond })
	t.Run("another method first", func(t *testing.T) {
		c, _ := dialWS(t, ts.ws+"/", nil)
		c.challenge()
		f := c.call("node.pair.list", map[string]any{})
		if f.OK || f.Error.Message != "invalid handshake: first request must be connect" {
			t.Fatalf("%+v", f)
		}
		if code := c.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
			t.Fatalf("close %d", code)
		}
	})
	t.Run("garbage first", func(t *testing.T) {
		c, _ := dialWS(t, ts.ws+"/", nil)
		c.challenge()
		c.conn.WriteMessage(websocket.TextMessage, []byte("{nope"))
		if code := c.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
			t.Fatalf("close %d", code)
		}
	})
	t.Run("silence", func(t *testing.T) {
		c, _ := dialWS(t, ts.ws+"/", nil)
		c.challenge()
		if code := c.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
			t.Fatalf("close %d", code)
		}
	})
	t.Run("oversized before hello", func(t *testing.T) {
		c, _ := dialWS(t, ts.ws+"/", nil)
		c.challenge()
		c.conn.WriteMessage(websocket.TextMessage, []byte(`{"pad":"`+strings.Repeat("x", 65<<10)+`"}`))
		if code := c.waitClosed(5 * time.Second); code != websocket.CloseMessageTooBig {
			t.Fatalf("close %d, want 1009", code)
		}
	})
}

// Finding 8 of issue #10: duplicate keys, binary frames and invalid UTF-8
// are refused in the shape of any malformed frame (nothing is run), not
// read leniently.
func TestStrictFrames(t *testing.T) {
	ts := startServer(t)
	c := ts.operator(t, "/", testToken)
	cases := []struct {
		name   string
		kind   int
		data   string
		id     string
		reason string
	}{
		{"duplicate key", websocket.TextMessage, `{"type":"req","id":"d1","method":"node.pair.request","method":"node.pair.list","params":{}}`, "d1", "duplicate key"},
		{"duplicate nested key", websocket.TextMessage, `{"type":"req","id":"d2","method":"node.pair.request","params":{"nodeId":"a","nodeId":"b"}}`, "d2", "duplicate key"},
		{"binary", websocket.BinaryMessage, `{"type":"req","id":"b1","method":"node.pair.request","params":{"nodeId":"bin"}}`, "invalid", "binary frames are not accepted"},
		{"invalid UTF-8", websocket.TextMessage, "{\"type\":\"req\",\"id\":\"u1\",\"method\":\"node.pair.request\",\"params\":{\"nodeId\":\"x\xff\"}}", "u1", "not valid UTF-8"},
		{"lone surrogate", websocket.TextMessage, `{"type":"req","id":"u2","method":"node.pair.request","params":{"nodeId":"x\ud800"}}`, "u2", "half a UTF-16 surrogate pair"},
	}
	for _, tc := range cases {
		c.conn.WriteMessage(tc.kind, []byte(tc.data))
		f, _ := c.next(5 * time.Second)
		if f.ID != tc.id || f.OK || f.Error == nil || f.Error.Code != "INVALID_REQUEST" ||
			!strings.HasPrefix(f.Error.Message, "invalid request frame: ") || !strings.Contains(f.Error.Message, tc.reason) {
			t.Fatalf("%s: %+v %+v", tc.name, f, f.Error)
		}
	}
	var l db.Listing
	c.mustCall("node.pair.list", map[string]any{}, &l)
	if len(l.Pending) != 0 {
		t.Fatalf("a refused frame ran: %+v", l.Pending)
	}
	// Before hello, a binary connect is refused like a malformed one.
	h, _ := dialWS(t, ts.ws+"/", nil)
	h.challenge()
	h.conn.WriteMessage(websocket.BinaryMessage, mustJSON(map[string]any{"type": "req", "id": "c1", "method": "connect", "params": connectFrame("operator", testToken, nil)}))
	if code := h.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
		t.Fatalf("binary connect: close %d", code)
	}
}

func TestFramesAfterHello(t *testing.T) {
	ts := startServer(t)
	c := ts.operator(t, "/", testToken)
	c.conn.WriteMessage(websocket.TextMessage, []byte("garbage"))
	f, _ := c.next(5 * time.Second)
	if f.ID != "invalid" || f.OK || f.Error.Code != "INVALID_REQUEST" || !strings.HasPrefix(f.Error.Message, "invalid request frame: ") {
		t.Fatalf("garbage after hello: %+v", f)
	}
	c.send(map[string]any{"type": "event", "id": "e1", "event": "x"})
	f, _ = c.next(5 * time.Second)
	if f.ID != "e1" || f.Error == nil || !strings.HasPrefix(f.Error.Message, "invalid request frame: ") {
		t.Fatalf("non-request after hello: %+v", f)
	}
	if f := c.call("node.pair.bogus", map[string]any{}); f.Error.Message != "unknown method: node.pair.bogus" {
		t.Fatalf("%+v", f.Error)
	}
	// 512 KiB is the limit after hello: 400 KiB passes, 600 KiB closes 1009.
	if f := c.call("node.pair.list", map[string]any{"pad": strings.Repeat("x", 400<<10)}); f.OK || !strings.Contains(f.Error.Message, "unexpected property 'pad'") {
		t.Fatalf("400 KiB frame: %+v", f)
	}
	c.conn.WriteMessage(websocket.TextMessage, []byte(`{"pad":"`+strings.Repeat("x", 600<<10)+`"}`))
	if code := c.waitClosed(5 * time.Second); code != websocket.CloseMessageTooBig {
		t.Fatalf("close %d, want 1009", code)
	}
}

func TestScopes(t *testing.T) {
	ts := startServer(t)
	read := ts.operator(t, "/", testToken, "operator.read")
	if f := read.call("node.pair.list", map[string]any{}); f.OK || f.Error.Message != "missing scope: operator.pairing" {
		t.Fatalf("read scope listing pairs: %+v", f)
	}
	read.mustCall("node.list", map[string]any{}, nil)
	pairing := ts.operator(t, "/", testToken, "operator.pairing")
	pairing.mustCall("node.list", map[string]any{}, nil) // pairing implies read
	admin := ts.operator(t, "/", testToken)              // no scopes: admin
	admin.mustCall("node.pair.list", map[string]any{}, nil)
	// Pairing events go to the sessions holding operator.pairing (admin
	// implies it), not to the read-only one.
	admin.mustCall("node.pair.request", map[string]any{"nodeId": "scoped"}, nil)
	pairing.event(db.EventRequested, 5*time.Second)
	admin.event(db.EventRequested, 5*time.Second)
	// The read-only session's answer comes after anything the request
	// queued for it.
	read.mustCall("node.list", map[string]any{}, nil)
	select {
	case f := <-read.events:
		t.Fatalf("a read-only operator got %s", f.Event)
	default:
	}
}

func TestProfileRoutingAndIsolation(t *testing.T) {
	ts := startServer(t)
	// Each profile has its own token and state.
	if _, err := dialWS(t, ts.ws+"/ws/nope", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown profile: %v", err)
	}
	work := ts.operator(t, "/ws/work", "work-token")
	work.mustCall("node.pair.request", map[string]any{"nodeId": "w1"}, nil)
	def := ts.operator(t, "/", testToken)
	var l db.Listing
	def.mustCall("node.pair.list", map[string]any{}, &l)
	if len(l.Pending) != 0 {
		t.Fatalf("default profile sees work's request: %+v", l)
	}
	c, _ := dialWS(t, ts.ws+"/ws/work", nil)
	c.challenge()
	if f := c.call("connect", connectFrame("operator", testToken, nil)); f.OK {
		t.Fatal("the default profile's token opened the work profile")
	}
	// Browsers only from allowed origins.
	if _, err := dialWS(t, ts.ws+"/", http.Header{"Origin": {"https://evil.example"}}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("foreign origin: %v", err)
	}
	same := http.Header{"Origin": {"http://" + strings.TrimPrefix(ts.ws, "ws://")}}
	if _, err := dialWS(t, ts.ws+"/", same); err != nil {
		t.Fatalf("same-host origin refused: %v", err)
	}
	resp, _ := http.Get(ts.url + "/")
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET / = %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestWrongTokenLockout(t *testing.T) {
	ts := startServer(t)
	for i := 1; i <= 11; i++ {
		c, _ := dialWS(t, ts.ws+"/", nil)
		c.challenge()
		f := c.call("connect", connectFrame("operator", "wrong", nil))
		want := "unauthorized: gateway token mismatch"
		if i == 11 {
			want = "unauthorized: too many failed attempts; retry in 300s"
		}
		if f.OK || f.Error.Message != want {
			t.Fatalf("attempt %d: %+v, want %q", i, f.Error, want)
		}
		c.waitClosed(5 * time.Second)
	}
	// Locked out even with the right token, until the lockout ends.
	c, _ := dialWS(t, ts.ws+"/", nil)
	c.challenge()
	if f := c.call("connect", connectFrame("operator", testToken, nil)); f.OK {
		t.Fatal("right token accepted during lockout")
	}
	ts.clock.Pin(time.Now().Add(5*time.Minute + time.Second))
	ts.operator(t, "/", testToken)
}

// While an address is locked out of the operator token, nothing there
// tells a right guess from a wrong one: the list of profiles leaves the
// profile out, and a node's connect presenting the operator token fails
// as a wrong node token does (it used to answer "too many failed
// attempts" to the right token only).
func TestOperatorLockoutConfirmsNoGuess(t *testing.T) {
	ts := startServer(t)
	for range 10 {
		ts.api(t, "GET", base+"/pending", "wrong-guess", "")
	}
	if r := ts.api(t, "GET", "/api/v1/profiles", testToken, ""); r.status != http.StatusUnauthorized || strings.Contains(string(r.body), `"default"`) {
		t.Fatalf("the list of profiles during the lockout, with the right token: %d %s", r.status, r.body)
	}
	_, wrong := ts.node(t, newDevice(), "a-wrong-guess-0123456789abcdef0123")
	_, right := ts.node(t, newDevice(), testToken)
	if wrong.OK || right.OK || wrong.Error.Code != right.Error.Code || wrong.Error.Message != right.Error.Message {
		t.Fatalf("a node's connect during the operator lockout: wrong guess %+v, right guess %+v", wrong.Error, right.Error)
	}
	ts.clock.Pin(time.Now().Add(5*time.Minute + time.Second))
	if _, hello := ts.node(t, newDevice(), testToken); !hello.OK {
		t.Fatalf("a legacy node with the operator token after the lockout: %+v", hello.Error)
	}
}

// Locked out of node tokens, a node's connect presenting the operator
// token is refused as every guess is: an outside attack found wrong
// guesses refused uncounted and the right one let in (unlimited guesses).
func TestNodeLockoutConfirmsNoOperatorGuess(t *testing.T) {
	ts := startServer(t)
	for i := range 10 {
		if _, f := ts.node(t, newDevice(), fmt.Sprintf("a-wrong-guess-%02d-0123456789abcdef", i)); f.OK {
			t.Fatal("a wrong guess was let in")
		}
	}
	_, wrong := ts.node(t, newDevice(), "a-wrong-guess-10-0123456789abcdef")
	_, right := ts.node(t, newDevice(), testToken)
	if right.OK || wrong.OK || wrong.Error.Message != right.Error.Message || !strings.Contains(right.Error.Message, "too many failed attempts") {
		t.Fatalf("locked out of node tokens: wrong guess %+v, right guess %+v", wrong.Error, right.Error)
	}
	ts.clock.Pin(time.Now().Add(5*time.Minute + time.Second))
	if _, hello := ts.node(t, newDevice(), testToken); !hello.OK {
		t.Fatalf("a legacy node with the operator token after the lockout: %+v", hello.Error)
	}
}

func TestEventsFromAnotherProcess(t *testing.T) {
	ts := startServer(t)
	op := ts.operator(t, "/", testToken, "operator.pairing")
	// A second store on the same file stands for the CLI's own process.
	p := ts.byName["default"].Config
	opts := db.OptionsFor(p)
	other, err := db.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	res, err := other.Request(context.Background(), db.RequestInput{NodeID: "from-cli"}, db.Origin{Actor: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	// The hub polls the outbox every 250 ms; the spec allows one second.
	ev := op.event(db.EventRequested, 5*time.Second)
	if !strings.Contains(string(ev.Payload), res.Request.RequestID) {
		t.Fatalf("event %s", ev.Payload)
	}
}

func TestSlowReaderIsDroppedOthersServed(t *testing.T) {
	ts := startServer(t)
	// Make list answers large, so a client that never reads fills its
	// socket and queue quickly.
	st := ts.byName["default"].Store
	for i := range 400 {
		pad := strings.Repeat("p", 200)
		if _, err := st.Request(context.Background(), db.RequestInput{NodeID: fmt.Sprintf("n%03d", i), NodeMeta: db.NodeMeta{DisplayName: pad, Platform: pad}}, db.Origin{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	var others []*wsClient
	for range 100 {
		others = append(others, ts.operator(t, "/", testToken, "operator.pairing"))
	}
	// The slow client: asks for many large lists and never reads. Its
	// reader goroutine is parked by not draining the channel below.
	slow, _, err := websocket.DefaultDialer.Dial(ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.ReadMessage() // challenge
	slow.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": connectFrame("operator", testToken, nil)})
	slow.ReadMessage() // hello
	for i := range 400 {
		if err := slow.WriteJSON(map[string]any{"type": "req", "id": fmt.Sprint(i), "method": "node.pair.list", "params": map[string]any{}}); err != nil {
			break // dropped already
		}
	}
	// Meanwhile everyone else still gets events.
	op := ts.operator(t, "/", testToken)
	op.mustCall("node.pair.request", map[string]any{"nodeId": "fresh"}, nil)
	var wg sync.WaitGroup
	for _, c := range others {
		wg.Go(func() { c.event(db.EventRequested, 10*time.Second) })
	}
	wg.Wait()
	// The server drops the slow client by itself (its handler ends),
	// whenever its queue overflowed: only the others and op remain ...
	deadline := time.Now().Add(30 * time.Second)
	for ts.activeConns() > len(others)+1 {
		if time.Now().After(deadline) {
			t.Fatalf("the slow client was never dropped (%d connections, want %d)", ts.activeConns(), len(others)+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ... deciding on 1013. A client whose socket is full cannot be sent the
	// close frame; it sees the connection end either way.
	if !strings.Contains(ts.log.String(), `msg="dropping a client that does not read its frames" code=1013`) {
		t.Fatalf("no 1013 drop logged:\n%s", ts.log)
	}
	slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the slow client's connection was not ended: %v", err)
			}
			break
		}
	}
}

func TestShutdownClosesClientsWith1001(t *testing.T) {
	ts := startServer(t)
	c := ts.operator(t, "/", testToken)
	pending, _ := dialWS(t, ts.ws+"/", nil) // still in the handshake
	ts.stop()
	if code := c.waitClosed(5 * time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("client closed with %d, want 1001", code)
	}
	if code := pending.waitClosed(5 * time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("handshaking client closed with %d, want 1001", code)
	}
	if !strings.Contains(ts.log.String(), "msg=stopped") {
		t.Fatal("server did not stop cleanly")
	}
}

func TestConnectCyclesLeakNothing(t *testing.T) {
	ts := startServer(t)
	cycle := func() {
		c, _, err := websocket.DefaultDialer.Dial(ts.ws+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.ReadMessage()
		c.WriteJSON(map[string]any{"type": "req", "id": "1", "method": "connect", "params": connectFrame("operator", testToken, nil)})
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		c.Close()
	}
	for range 50 { // warm up pools
		cycle()
	}
	before := ts.activeConns()
	for range 1000 {
		cycle()
	}
	deadline := time.Now().Add(10 * time.Second)
	for ts.activeConns() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := ts.activeConns(); after > before {
		t.Fatalf("%d connections still tracked after 1000 cycles (before: %d)", after, before)
	}
	// Goroutines are checked by goleak when the package's tests end.
}

func (s *Server) activeConns() int { return s.ws.Conns() }

func TestSilentAutoApproval(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) {
		s.cfg.Profiles[0].SilentCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	op := ts.operator(t, "/", testToken)
	// A silent request from a trusted network is approved at once, and the
	// node receives its token like any approval.
	d := newDevice()
	n, hello := ts.node(t, d, "")
	if !hello.OK {
		t.Fatal(hello.Error)
	}
	var res db.RequestResult
	n.mustCall("node.pair.request", map[string]any{"nodeId": d.id, "silent": true}, &res)
	if res.Status != db.StatusApproved {
		t.Fatalf("silent request from 127.0.0.1: %+v", res)
	}
	private := n.event(db.EventResolved, 5*time.Second)
	if !strings.Contains(string(private.Payload), `"token":"`) {
		t.Fatalf("auto-approved node got no token: %s", private.Payload)
	}
	// Not silent, or from elsewhere: it waits for an operator.
	var loud, remote db.RequestResult
	op.mustCall("node.pair.request", map[string]any{"nodeId": "loud", "remoteIp": "127.0.0.9"}, &loud)
	op.mustCall("node.pair.request", map[string]any{"nodeId": "far", "silent": true, "remoteIp": "198.51.100.4"}, &remote)
	if loud.Status != db.StatusPending || remote.Status != db.StatusPending {
		t.Fatalf("auto-approved what it must not: %+v %+v", loud, remote)
	}
	// The audit log names the policy as the approver.
	evs, _ := ts.byName["default"].Store.EventsAfter(context.Background(), 0, 100)
	var byPolicy int
	for _, e := range evs {
		if e.Name == db.EventResolved && e.Actor == "policy" {
			byPolicy++
		}
	}
	if byPolicy != 1 {
		t.Fatalf("%d approvals by policy, want 1", byPolicy)
	}
}

func TestProfileOwnListenAddress(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.cfg.Profiles[1].Listen = "127.0.0.1:0" })
	m := regexp.MustCompile(`msg=listening addr=(\S+) profile=work`).FindStringSubmatch(ts.log.String())
	if m == nil {
		t.Fatalf("no listener for profile work:\n%s", ts.log)
	}
	own := &testServer{Server: ts.Server, ws: "ws://" + m[1]}
	c := own.operator(t, "/", "work-token") // "/" there is the work profile
	var l db.Listing
	c.mustCall("node.pair.list", map[string]any{}, &l)
	if _, err := dialWS(t, own.ws+"/ws/work", nil); err != nil {
		t.Fatalf("/ws/work on work's own address: %v", err)
	}
	if _, err := dialWS(t, own.ws+"/ws/default", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("another profile reached through work's own address: %v", err)
	}
	// Over REST, the refusal says why.
	own.url = "http://" + m[1]
	r := own.api(t, "GET", "/api/v1/profiles/default/pending", testToken, "")
	if want := `this address serves only profile "work" (its own listen address); "default" is served on the server's main address, not here`; r.status != 404 || r.errorMessage() != want {
		t.Fatalf("default on work's own address = %d %s, want 404 %q", r.status, r.body, want)
	}
	// The main address's token, listing profiles here: 401, but not a
	// failed guess (a REST trial: eleven of them locked the listing out
	// for every token from that address).
	for i := range 12 {
		if r := own.api(t, "GET", "/api/v1/profiles", testToken, ""); r.status != http.StatusUnauthorized {
			t.Fatalf("listing %d on work's own address with default's token = %d %s, want 401", i, r.status, r.body)
		}
	}
	if r := own.api(t, "GET", "/api/v1/profiles", "work-token", ""); r.status != 200 || !strings.Contains(string(r.body), `"work"`) {
		t.Fatalf("listing with work's token after the others = %d %s", r.status, r.body)
	}
	// /readyz there reports work alone.
	if r := own.api(t, "GET", "/readyz", "", ""); r.status != 200 || string(r.body) != `{"ok":true,"profiles":{"work":"ok"}}`+"\n" {
		t.Fatalf("/readyz on work's own address = %d %s", r.status, r.body)
	}
	// The start-up log gives the operator page's address.
	if !strings.Contains(ts.log.String(), "page=http://"+m[1]+"/ui/") {
		t.Fatalf("no page address in the log:\n%s", ts.log)
	}
}

func TestTickReachesEverySession(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.TickInterval = 50 * time.Millisecond })
	// The injected clock stamps the tick.
	pinned := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	ts.clock.Pin(pinned)
	op := ts.operator(t, "/", testToken, "operator.read")
	n, hello := ts.node(t, newDevice(), "")
	if !hello.OK {
		t.Fatal(hello.Error)
	}
	for _, c := range []*wsClient{op, n} {
		var p struct {
			TS int64 `json:"ts"`
		}
		if err := json.Unmarshal(c.event("tick", 5*time.Second).Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.TS != pinned.UnixMilli() {
			t.Fatalf("tick ts %d, want the server clock's %d", p.TS, pinned.UnixMilli())
		}
	}
}

// hello-ok is the first frame after the challenge even while events flow:
// a session opens in its hub and gets hello-ok queued in one step, so no
// event can go out before it (pairgate-load's client, and others, read
// the next frame as the answer to connect).
func TestHelloOKComesBeforeAnyEvent(t *testing.T) {
	// A tick every millisecond to every open session, and requests
	// flowing: an event that could slip in before hello-ok would.
	ts := startServer(t, func(s *serverSetup) { s.opts.TickInterval = time.Millisecond })
	st := ts.byName["default"].Store
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := st.Request(context.Background(), db.RequestInput{NodeID: fmt.Sprintf("busy-%d", i)}, db.Origin{Actor: "test"}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	for i := range 200 {
		ws, _, err := websocket.DefaultDialer.Dial(ts.ws+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.ReadMessage() // challenge
		if err := ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": connectFrame("operator", testToken, nil)}); err != nil {
			t.Fatal(err)
		}
		var first struct{ Type, ID, Event string }
		if err := ws.ReadJSON(&first); err != nil {
			t.Fatal(err)
		}
		ws.Close()
		if first.Type != "res" || first.ID != "c" {
			t.Fatalf("connect %d: the first frame after the challenge is %+v, want hello-ok", i, first)
		}
	}
}

// Frames queued for a connection while its own call is under way leave
// with the call's answer, or after callHold if the call lasts: a call held
// up by a busy store does not hold up the connection's events.
func TestEventsDuringALongCallAreNotHeldBack(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.TickInterval = 50 * time.Millisecond })
	op := ts.operator(t, "/", testToken)
	// Another process holds the database's write lock.
	release := locktest.HoldWriteLock(t, ts.byName["default"].Config.DatabasePath())
	// The call's answer is read from op.frames below, on this goroutine.
	op.send(map[string]any{"type": "req", "id": "waits", "method": "node.pair.request", "params": map[string]any{"nodeId": "waits"}})
	answered := op.frames
	time.Sleep(100 * time.Millisecond) // the call is under way, blocked on the lock
	for drained := false; !drained; {
		select {
		case <-op.events:
		default:
			drained = true
		}
	}
	// Ticks come every 50 ms; the call stays blocked for as long as the
	// lock is held.
	select {
	case f := <-op.events:
		if f.Event != "tick" {
			t.Fatalf("event %s during the call, want tick", f.Event)
		}
	case f := <-answered:
		t.Fatalf("the call was answered while the lock was held: %+v", f)
	case <-time.After(2 * time.Second):
		t.Fatal("no tick reached a connection while its call waited for the store")
	}
	release()
	select {
	case f := <-answered:
		if f.ID != "waits" || !f.OK {
			t.Fatalf("the call's answer once the lock was released: %+v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call was not answered once the lock was released")
	}
}

// A burst of events is not a slow reader: when the sweeper expires
// hundreds of requests in one transaction, every operator that reads gets
// every event and stays connected.
func TestEventBurstDoesNotDropReadingOperators(t *testing.T) {
	ts := startServer(t)
	st := ts.byName["default"].Store
	now := time.Now()
	ts.clock.Pin(now)
	const n = 300
	for i := range n {
		if _, err := st.Request(context.Background(), db.RequestInput{NodeID: fmt.Sprintf("burst-%03d", i)}, db.Origin{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	var ops []*wsClient
	for range 4 {
		ops = append(ops, ts.operator(t, "/", testToken, "operator.pairing"))
	}
	ts.clock.Pin(now.Add(6 * time.Minute)) // past the TTL
	// The server's own sweeper may take a batch of them first: what counts
	// is that none is pending once this sweep, queued behind it, is done.
	if _, err := st.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left, err := st.Pending(context.Background()); err != nil || len(left) != 0 {
		t.Fatalf("after the sweep %d pending, %v; want all %d expired", len(left), err, n)
	}
	for i, op := range ops {
		for range n {
			op.event(db.EventResolved, 10*time.Second)
		}
		if f := op.call("node.pair.list", map[string]any{}); !f.OK {
			t.Fatalf("operator %d after the burst: %+v", i, f.Error)
		}
	}
	if strings.Contains(ts.log.String(), "does not read its frames") {
		t.Fatalf("a reading operator was dropped:\n%s", ts.log)
	}
}

// One source address holds at most maxConnectionsPerAddress connections,
// in their handshake or in a session; the next is refused (429) before
// any upgrade, and a closed one frees its place.
func TestConnectionsPerAddressAreBounded(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.cfg.MaxConnsPerAddress = 3 })
	var held []*wsClient
	for range 3 {
		c, err := dialWS(t, ts.ws+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	held[0].challenge()
	held[0].call("connect", connectFrame("operator", testToken, nil)) // one in a session, two in their handshake
	_, resp, err := websocket.DefaultDialer.Dial(ts.ws+"/", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a fourth connection from the address: %v %+v, want 429", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(body), `{"error":{"code":"limit","message":"too many connections from this address (at most 3)`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("refusal %q (%s)", body, resp.Header.Get("Content-Type"))
	}
	held[1].conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _, err := websocket.DefaultDialer.Dial(ts.ws+"/", nil)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection did not free its place: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Bounds for what an unauthenticated client holds (an outside attack): a
// node held for pairing may send frames of the connect's size only, not
// 512 KiB; a request id is at most 256 bytes (every answer echoes it);
// a request header at most 16 KiB (60 KB ones held 134 KB of memory a
// connection).
func TestUnpairedSessionsAreHeldSmall(t *testing.T) {
	ts := startServer(t)
	big := map[string]any{"type": "req", "id": "big", "method": "health", "params": map[string]any{"pad": strings.Repeat("x", 100<<10)}}

	held, hello := ts.node(t, newDevice(), "")
	if !hello.OK {
		t.Fatalf("a new node's connect: %+v", hello.Error)
	}
	held.send(big)
	if code := held.waitClosed(10 * time.Second); code != websocket.CloseMessageTooBig {
		t.Fatalf("a held node's 100 KiB frame: close %d, want %d", code, websocket.CloseMessageTooBig)
	}

	op := ts.operator(t, "/", testToken)
	op.send(big)
	if f, _ := op.next(10 * time.Second); f.ID != "big" || f.OK {
		t.Fatalf("an operator's 100 KiB frame: %+v", f)
	}
	long := strings.Repeat("i", 300)
	op.send(map[string]any{"type": "req", "id": long, "method": "health"})
	if f, _ := op.next(10 * time.Second); f.OK || strings.Contains(f.ID, long) || !strings.Contains(f.Error.Message, "id longer than 256 bytes") {
		t.Fatalf("a 300-byte id: %+v", f)
	}

	r := ts.api(t, "GET", "/healthz", "", "", "X-Pad", strings.Repeat("h", 24<<10))
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 24 KiB header = %d", r.status)
	}
	if r := ts.api(t, "GET", "/healthz", "", "", "X-Pad", strings.Repeat("h", 12<<10)); r.status != http.StatusOK {
		t.Fatalf("a 12 KiB header = %d", r.status)
	}
}

// Nodes waiting for pairing hold at most a quarter of the connections the
// server takes (4,096 at most): an outside attack held 18,000 such
// sessions from 20 addresses and left no connection for the operator.
func TestUnpairedSessionsAreBoundedInAll(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.MaxConnections = 40 })
	store := ts.byName["default"].Store
	var held []*wsClient
	var devices []device
	for i := range 10 {
		d := newDevice()
		c, hello := ts.node(t, d, "")
		if !hello.OK {
			t.Fatalf("node %d: %+v", i, hello.Error)
		}
		held, devices = append(held, c), append(devices, d)
	}
	c, refused := ts.node(t, newDevice(), "")
	if refused.OK || !strings.Contains(refused.Error.Message, "too many nodes are waiting for pairing on this server (10); retry later") {
		t.Fatalf("the 11th waiting node: %+v", refused.Error)
	}
	if code := c.waitClosed(10 * time.Second); code != 1013 {
		t.Fatalf("closed %d, want 1013 (try again later)", code)
	}
	// The node turned away left no request for the operator to see (a
	// re-test found one per refused address).
	if pending, err := store.Pending(context.Background()); err != nil || len(pending) != 10 {
		t.Fatalf("%d pending requests (%v), want the 10 held nodes' only", len(pending), err)
	}
	// The operator is served, and sees the bound reached.
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
	metrics := string(ts.api(t, "GET", "/metrics", "", "").body)
	for _, want := range []string{"\npairgate_unpaired_sessions 10\n", "\npairgate_unpaired_sessions_max 10\n"} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	held[0].conn.Close()
	<-held[0].ended
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, hello := ts.node(t, devices[0], ""); hello.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed waiting session did not free its place")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Connects racing for the last unpaired places open a request only when
// they get a place: a re-test's 60 connects at once against 47 places
// opened 60 requests, 13 of them for nodes turned away.
func TestUnpairedPlacesAreTakenBeforeTheRequest(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) {
		s.opts.MaxConnections = 40 // 10 unpaired places
		s.cfg.Profiles[0].RequestsPerAddress = 100
		s.cfg.Profiles[0].RequestsPerProfile = 100
	})
	store := ts.byName["default"].Store
	const tries = 24
	results := make(chan bool, tries)
	var clients sync.WaitGroup
	for range tries {
		clients.Go(func() {
			c, hello := ts.node(t, newDevice(), "")
			results <- hello.OK
			if !hello.OK {
				c.waitClosed(10 * time.Second)
			}
		})
	}
	clients.Wait()
	close(results)
	held := 0
	for ok := range results {
		if ok {
			held++
		}
	}
	pending, err := store.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if held != 10 || len(pending) != held {
		t.Fatalf("%d of %d connects held, %d requests opened; want 10 and one request each", held, tries, len(pending))
	}
}

// One device holds at most two sessions while it waits for pairing: a
// third takes the oldest's place, which is closed saying so. A re-test
// filled every unpaired place of the server from four addresses with one
// key each (one request in all, which the request rates never saw).
func TestOneDeviceHoldsTwoUnpairedSessions(t *testing.T) {
	ts := startServer(t)
	d := newDevice()
	var sessions []*wsClient
	for i := range 3 {
		c, hello := ts.node(t, d, "")
		if !hello.OK {
			t.Fatalf("session %d: %+v", i, hello.Error)
		}
		sessions = append(sessions, c)
	}
	if code := sessions[0].waitClosed(10 * time.Second); code != 1000 {
		t.Fatalf("the oldest session closed %d, want 1000", code)
	}
	if reason, _ := sessions[0].closeText.Load().(string); reason != "a newer connection of this device took its place" {
		t.Fatalf("close reason %q", reason)
	}
	// The two newest are still served.
	for i, c := range sessions[1:] {
		if res := c.call("node.pair.request", map[string]any{"nodeId": d.id}); !res.OK {
			t.Fatalf("session %d after the third opened: %+v", i+1, res.Error)
		}
	}
	// Another device is not affected.
	if _, hello := ts.node(t, newDevice(), ""); !hello.OK {
		t.Fatalf("another device: %+v", hello.Error)
	}
}

package db

import (
	"database/sql"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var kitchenIPad = RequestInput{
	NodeID: "88a48acd09bad5544c01dfdcb514b766021b0cb29f92866f2538523815431078",
	NodeMeta: NodeMeta{
		DisplayName: "Kitchen iPad", Platform: "iOS", Version: "2026.1.29", CoreVersion: "2026.1.29",
		UIVersion: "1.4.0", DeviceFamily: "iPad", ModelIdentifier: "iPad13,4",
		Caps:     []string{"canvas", "camera", "screen"},
		Commands: []string{"canvas.navigate", "camera.snap", "screen.record"},
		RemoteIP: "192.0.2.10",
	},
}

func TestRequestShapeMatchesOpenClaw(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	res := mustRequest(t, s, kitchenIPad)
	if !res.Created || res.Status != "pending" || res.Request.IsRepair {
		t.Fatalf("unexpected result %+v", res)
	}
	if res.Request.TS != clk.Now().UnixMilli() {
		t.Fatalf("ts = %d, want %d", res.Request.TS, clk.Now().UnixMilli())
	}
	// The payload of node.pair.request in the fixtures, with our id and ts.
	got, _ := json.Marshal(res)
	want := `{"status":"pending","request":{"requestId":"` + res.Request.RequestID + `","nodeId":"88a48acd09bad5544c01dfdcb514b766021b0cb29f92866f2538523815431078","displayName":"Kitchen iPad","platform":"iOS","version":"2026.1.29","coreVersion":"2026.1.29","uiVersion":"1.4.0","deviceFamily":"iPad","modelIdentifier":"iPad13,4","caps":["canvas","camera","screen"],"commands":["canvas.navigate","camera.snap","screen.record"],"remoteIp":"192.0.2.10","isRepair":false,"ts":1795626734109},"created":true}`
	if string(got) != want {
		t.Fatalf("json\n got %s\nwant %s", got, want)
	}
	if !uuidRE.MatchString(res.Request.RequestID) {
		t.Fatalf("request id %q is not a lowercase v4 uuid", res.Request.RequestID)
	}
	evs := allEvents(t, s)
	if len(evs) != 1 || evs[0].Name != EventRequested || evs[0].Actor != "cli" {
		t.Fatalf("events = %+v", evs)
	}
	var payload PendingRequest
	json.Unmarshal(evs[0].Payload, &payload)
	if !reflect.DeepEqual(payload, res.Request) {
		t.Fatalf("event payload %+v != request %+v", payload, res.Request)
	}
}

func TestRequestRepeatIsIdempotent(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	first := mustRequest(t, s, kitchenIPad)
	clk.Advance(time.Minute)
	silent := true
	// Same node, padded id, other metadata: the stored request comes back unchanged.
	again := mustRequest(t, s, RequestInput{NodeID: "  " + kitchenIPad.NodeID + "  ", NodeMeta: NodeMeta{DisplayName: "Renamed before approval"}, Silent: &silent})
	if again.Created || !reflect.DeepEqual(again.Request, first.Request) {
		t.Fatalf("repeat = %+v, want the first request unchanged", again)
	}
	if n := len(allEvents(t, s)); n != 1 {
		t.Fatalf("%d events after a repeat, want 1", n)
	}
	// Repeats do not extend the ttl: 4 more minutes and the original expires.
	clk.Advance(4*time.Minute + time.Millisecond)
	third := mustRequest(t, s, kitchenIPad)
	if !third.Created || third.Request.RequestID == first.Request.RequestID {
		t.Fatalf("after expiry a new request id is due, got %+v", third)
	}
	if got := eventNames(allEvents(t, s)); !slices.Equal(got, []string{EventRequested, EventResolved + ":expired", EventRequested}) {
		t.Fatalf("events %v", got)
	}
}

func TestOnePendingPerNodeIsEnforcedBySchema(t *testing.T) {
	s := openStore(t, newClock())
	mustRequest(t, s, RequestInput{NodeID: "n1"})
	_, err := s.write.Exec(`INSERT INTO requests (request_id, node_id, is_repair, ts_ms) VALUES ('x', 'n1', 0, 1)`)
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("a second pending row for a node must violate the unique index, got %v", err)
	}
}

func TestApproveIssuesFreshTokenAndRepairRotatesIt(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	first := mustApprove(t, s, mustRequest(t, s, kitchenIPad).Request.RequestID)
	if len(first.Node.Token) != 43 || strings.ContainsAny(first.Node.Token, "+/=") {
		t.Fatalf("token %q is not 43 base64url characters", first.Node.Token)
	}
	created := first.Node.CreatedAtMs
	if first.Node.ApprovedAtMs != created || created != clk.Now().UnixMilli() {
		t.Fatalf("times %+v", first.Node)
	}
	if first.Node.DisplayName != "Kitchen iPad" || first.Node.RemoteIP != "192.0.2.10" {
		t.Fatalf("metadata not taken from the request: %+v", first.Node)
	}

	// A repair request leaves the current token working until approved.
	clk.Advance(time.Minute)
	repair := mustRequest(t, s, RequestInput{NodeID: kitchenIPad.NodeID, NodeMeta: NodeMeta{DisplayName: "Kitchen iPad", Platform: "iOS"}})
	if !repair.Request.IsRepair {
		t.Fatalf("request for a paired node must be a repair")
	}
	if v, _ := s.Verify(ctx, kitchenIPad.NodeID, first.Node.Token); !v.OK {
		t.Fatalf("old token must verify while the repair is pending")
	}

	clk.Advance(time.Minute)
	second := mustApprove(t, s, repair.Request.RequestID)
	if second.Node.Token == first.Node.Token {
		t.Fatalf("repair approval must issue a fresh token")
	}
	if second.Node.CreatedAtMs != created || second.Node.ApprovedAtMs != clk.Now().UnixMilli() {
		t.Fatalf("createdAtMs must be kept and approvedAtMs renewed: %+v", second.Node)
	}
	// Legacy: the record takes the repair request's metadata only.
	if second.Node.Version != "" || second.Node.Caps != nil || second.Node.Platform != "iOS" {
		t.Fatalf("metadata must come from the repair request: %+v", second.Node)
	}
	if v, _ := s.Verify(ctx, kitchenIPad.NodeID, first.Node.Token); v.OK {
		t.Fatalf("old token must stop verifying after the repair approval")
	}
	if v, _ := s.Verify(ctx, kitchenIPad.NodeID, second.Node.Token); !v.OK || v.Node.Token != second.Node.Token {
		t.Fatalf("new token must verify: %+v", v)
	}
}

func TestOperatorRenameSurvivesRepairApproval(t *testing.T) {
	s := openStore(t, newClock())
	pairNode(t, s, kitchenIPad.NodeID)
	if _, err := s.Rename(ctx, kitchenIPad.NodeID, "  Living Room iPad  ", byCLI); err != nil {
		t.Fatal(err)
	}
	repair := mustRequest(t, s, RequestInput{NodeID: kitchenIPad.NodeID, NodeMeta: NodeMeta{DisplayName: "Kitchen iPad"}})
	a := mustApprove(t, s, repair.Request.RequestID)
	if a.Node.DisplayName != "Living Room iPad" {
		t.Fatalf("display name after repair = %q, want the operator's", a.Node.DisplayName)
	}
	n, _ := s.Node(ctx, kitchenIPad.NodeID)
	if n.DisplayName != "Living Room iPad" {
		t.Fatalf("stored display name = %q", n.DisplayName)
	}
}

func TestRejectLeavesPairingUntouched(t *testing.T) {
	s := openStore(t, newClock())
	token := pairNode(t, s, "n1")
	repair := mustRequest(t, s, RequestInput{NodeID: "n1", NodeMeta: NodeMeta{Platform: "other"}})
	rej, err := s.Reject(ctx, repair.Request.RequestID, byCLI)
	if err != nil {
		t.Fatal(err)
	}
	if rej != (Rejection{RequestID: repair.Request.RequestID, NodeID: "n1"}) {
		t.Fatalf("reject result %+v", rej)
	}
	if v, _ := s.Verify(ctx, "n1", token); !v.OK || v.Node.Platform != "" {
		t.Fatalf("pairing changed by a rejection: %+v", v)
	}
	l, _ := s.List(ctx)
	if len(l.Pending) != 0 || len(l.Paired) != 1 {
		t.Fatalf("list after reject %+v", l)
	}
}

func TestVerify(t *testing.T) {
	s := openStore(t, newClock())
	token := pairNode(t, s, "n1")
	pairNode(t, s, "n2")
	for _, tc := range []struct {
		name, node, token string
		ok                bool
	}{
		{"right", "n1", token, true},
		{"padded node id", " n1 ", token, true},
		{"wrong token", "n1", token[:42] + "x", false},
		{"another node's token", "n2", token, false},
		{"unknown node", "nope", token, false},
		{"empty token", "n1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := s.Verify(ctx, tc.node, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if v.OK != tc.ok || (v.Node != nil) != tc.ok {
				t.Fatalf("verify = %+v, want ok=%v", v, tc.ok)
			}
		})
	}
}

func TestRenameAndRemove(t *testing.T) {
	s := openStore(t, newClock())
	token := pairNode(t, s, "n1")
	r, err := s.Rename(ctx, " n1", "  Den iPad  ", byCLI)
	if err != nil || r != (Renamed{NodeID: "n1", DisplayName: "Den iPad"}) {
		t.Fatalf("rename = %+v, %v", r, err)
	}
	// The same name again: answered, but no change and no event (a REST
	// trial saw each repeat delivered to webhooks as a rename).
	if r, err := s.Rename(ctx, "n1", "Den iPad", byCLI); err != nil || r.DisplayName != "Den iPad" {
		t.Fatalf("rename to the same name = %+v, %v", r, err)
	}
	rm, err := s.Remove(ctx, "n1", byCLI)
	if err != nil || rm.NodeID != "n1" {
		t.Fatalf("remove = %+v, %v", rm, err)
	}
	if v, _ := s.Verify(ctx, "n1", token); v.OK {
		t.Fatalf("a removed node's token must fail at once")
	}
	want := []string{EventRequested, EventResolved + ":approved", EventRenamed, EventResolved + ":removed"}
	if got := eventNames(allEvents(t, s)); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestErrors(t *testing.T) {
	long := strings.Repeat("x", MaxStringBytes+1)
	tests := []struct {
		name string
		// call runs against a store holding paired node "p" and pending
		// request id (for node "q"); decided holds an approved request id.
		call func(s *Store, pending, decided string) error
		code Code
		msg  string
	}{
		{"request blank node id", func(s *Store, _, _ string) error {
			_, err := s.Request(ctx, RequestInput{NodeID: "   "}, byCLI)
			return err
		}, CodeInvalid, "nodeId required"},
		{"request long node id", func(s *Store, _, _ string) error {
			_, err := s.Request(ctx, RequestInput{NodeID: long}, byCLI)
			return err
		}, CodeInvalid, "nodeId: at most 256 bytes (got 257)"},
		{"request long display name", func(s *Store, _, _ string) error {
			_, err := s.Request(ctx, RequestInput{NodeID: "z", NodeMeta: NodeMeta{DisplayName: long}}, byCLI)
			return err
		}, CodeInvalid, "displayName: at most 256 bytes (got 257)"},
		{"request empty cap", func(s *Store, _, _ string) error {
			_, err := s.Request(ctx, RequestInput{NodeID: "z", NodeMeta: NodeMeta{Caps: []string{"a", ""}}}, byCLI)
			return err
		}, CodeInvalid, "caps[1]: must not be empty"},
		{"request too many commands", func(s *Store, _, _ string) error {
			_, err := s.Request(ctx, RequestInput{NodeID: "z", NodeMeta: NodeMeta{Commands: make([]string, MaxListItems+1)}}, byCLI)
			return err
		}, CodeInvalid, "commands: at most 256 items (got 257)"},
		{"request long cap", func(s *Store, _, _ string) error {
			_, err := s.Request(ctx, RequestInput{NodeID: "z", NodeMeta: NodeMeta{Caps: []string{strings.Repeat("c", MaxItemBytes+1)}}}, byCLI)
			return err
		}, CodeInvalid, "caps[0]: at most 128 bytes (got 129)"},
		{"request invalid utf-8", func(s *Store, _, _ string) error {
			_, err := s.Request(ctx, RequestInput{NodeID: "z", NodeMeta: NodeMeta{Platform: "\xff"}}, byCLI)
			return err
		}, CodeInvalid, "platform: not valid UTF-8"},
		{"approve unknown", func(s *Store, _, _ string) error {
			_, err := s.Approve(ctx, "does-not-exist", byCLI)
			return err
		}, CodeNotFound, "unknown requestId"},
		{"reject unknown", func(s *Store, _, _ string) error {
			_, err := s.Reject(ctx, "does-not-exist", byCLI)
			return err
		}, CodeNotFound, "unknown requestId"},
		{"approve twice", func(s *Store, _, decided string) error {
			_, err := s.Approve(ctx, decided, byCLI)
			return err
		}, CodeConflict, ""},
		{"reject approved", func(s *Store, _, decided string) error {
			_, err := s.Reject(ctx, decided, byCLI)
			return err
		}, CodeConflict, ""},
		{"rename blank", func(s *Store, _, _ string) error {
			_, err := s.Rename(ctx, "nope", "  ", byCLI)
			return err
		}, CodeInvalid, "displayName required"},
		{"rename unknown", func(s *Store, _, _ string) error {
			_, err := s.Rename(ctx, "nope", "x", byCLI)
			return err
		}, CodeNotFound, "unknown nodeId"},
		{"remove unknown", func(s *Store, _, _ string) error {
			_, err := s.Remove(ctx, "nope", byCLI)
			return err
		}, CodeNotFound, "unknown nodeId"},
		{"describe unknown", func(s *Store, _, _ string) error {
			_, err := s.Node(ctx, "nope")
			return err
		}, CodeNotFound, "unknown nodeId"},
		{"status unknown", func(s *Store, _, _ string) error {
			_, err := s.RequestStatus(ctx, "nope")
			return err
		}, CodeNotFound, "unknown requestId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, newClock())
			decided := mustRequest(t, s, RequestInput{NodeID: "p"}).Request.RequestID
			mustApprove(t, s, decided)
			pending := mustRequest(t, s, RequestInput{NodeID: "q"}).Request.RequestID
			before := allEvents(t, s)
			beforeList, _ := s.List(ctx)

			wantCode(t, tc.call(s, pending, decided), tc.code, tc.msg)

			if after := allEvents(t, s); len(after) != len(before) {
				t.Fatalf("a failed call wrote %d events", len(after)-len(before))
			}
			if afterList, _ := s.List(ctx); !reflect.DeepEqual(afterList, beforeList) {
				t.Fatalf("a failed call changed the state:\n%+v\n%+v", beforeList, afterList)
			}
		})
	}
}

func TestDecidedRequestsExplainThemselves(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	approved := mustRequest(t, s, RequestInput{NodeID: "a"}).Request.RequestID
	mustApprove(t, s, approved)
	rejected := mustRequest(t, s, RequestInput{NodeID: "b"}).Request.RequestID
	if _, err := s.Reject(ctx, rejected, byCLI); err != nil {
		t.Fatal(err)
	}
	at := formatMs(clk.Now().UnixMilli())
	_, err := s.Approve(ctx, approved, byCLI)
	wantCode(t, err, CodeConflict, "request "+approved+" was already approved at "+at)
	_, err = s.Approve(ctx, rejected, byCLI)
	wantCode(t, err, CodeConflict, "request "+rejected+" was already rejected at "+at)

	st, err := s.RequestStatus(ctx, approved)
	if err != nil || st.Status != StatusApproved || st.DecidedAtMs != clk.Now().UnixMilli() {
		t.Fatalf("status %+v, %v", st, err)
	}
}

func TestPendingCap(t *testing.T) {
	clk := newClock()
	opts := testOptions(t.TempDir(), clk)
	opts.MaxPending = 2
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustRequest(t, s, RequestInput{NodeID: "a"})
	mustRequest(t, s, RequestInput{NodeID: "b"})
	_, err = s.Request(ctx, RequestInput{NodeID: "c"}, byCLI)
	wantCode(t, err, CodeLimit, "too many pending requests: this profile holds at most 2 (maxPending); approve or reject some, or wait for them to expire")
	// A repeat of a pending node is not a new request and still answers.
	if res := mustRequest(t, s, RequestInput{NodeID: "a"}); res.Created {
		t.Fatalf("repeat at the cap must return the stored request")
	}
	// Expired requests do not count, even before the sweeper runs.
	clk.Advance(5*time.Minute + time.Millisecond)
	if res := mustRequest(t, s, RequestInput{NodeID: "c"}); !res.Created {
		t.Fatalf("after expiry the cap must have room")
	}
}

func TestListOrder(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	for _, id := range []string{"a", "b", "c"} {
		mustRequest(t, s, RequestInput{NodeID: id})
		clk.Advance(time.Second)
	}
	for _, id := range []string{"x", "y"} {
		pairNode(t, s, id)
		clk.Advance(time.Second)
	}
	l, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pending, paired []string
	for _, p := range l.Pending {
		pending = append(pending, p.NodeID)
	}
	for _, n := range l.Paired {
		paired = append(paired, n.NodeID)
		if n.Token != "" {
			t.Fatalf("listed node %s carries its token", n.NodeID)
		}
	}
	if !slices.Equal(pending, []string{"c", "b", "a"}) || !slices.Equal(paired, []string{"y", "x"}) {
		t.Fatalf("pending %v paired %v", pending, paired)
	}
}

func TestEmptyListIsNotNull(t *testing.T) {
	s := openStore(t, newClock())
	l, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(l)
	if string(b) != `{"pending":[],"paired":[]}` {
		t.Fatalf("empty list json = %s", b)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	s := openStore(t, newClock())
	silent := false
	in := RequestInput{NodeID: "m", Silent: &silent, NodeMeta: NodeMeta{
		Caps: []string{}, Commands: []string{"a"}, Permissions: Permissions{{"camera", true}, {"location", false}},
	}}
	req := mustRequest(t, s, in).Request
	l, _ := s.List(ctx)
	if !reflect.DeepEqual(l.Pending[0], req) {
		t.Fatalf("stored %+v, read back %+v", req, l.Pending[0])
	}
	b, _ := json.Marshal(l.Pending[0])
	if !strings.Contains(string(b), `"caps":[],"commands":["a"],"permissions":{"camera":true,"location":false},"silent":false`) {
		t.Fatalf("empty list, map and explicit false must survive: %s", b)
	}
}

func TestCounts(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	pairNode(t, s, "a")
	mustRequest(t, s, RequestInput{NodeID: "b"})
	clk.Advance(time.Minute)
	mustRequest(t, s, RequestInput{NodeID: "c"})
	if c, err := s.Counts(ctx); err != nil || c != (Counts{Pending: 2, Paired: 1}) {
		t.Fatalf("counts %+v %v", c, err)
	}
	clk.Advance(4*time.Minute + time.Millisecond) // b expires, c lives
	if c, _ := s.Counts(ctx); c != (Counts{Pending: 1, Paired: 1}) {
		t.Fatalf("counts after expiry %+v", c)
	}
}

// The auto-approval policy is a pairing rule: the request and its
// approval are one transaction, with both events, and a request the node
// already had pending is returned as it was.
func TestAutoApproveIsOneTransaction(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	held := mustRequest(t, s, RequestInput{NodeID: "held"})
	silent := true
	again, err := s.Request(t.Context(), RequestInput{NodeID: "held", Silent: &silent, AutoApprove: true}, Origin{Actor: "node", Source: "10.0.0.9"})
	if err != nil || again.Created || again.Status != StatusPending || again.Request.RequestID != held.Request.RequestID {
		t.Fatalf("a pending request is not auto-approved on repeat: %+v %v", again, err)
	}
	before := len(allEvents(t, s))
	var awaited string
	awaiting := func(id string) {
		if n := len(allEvents(t, s)); n != before {
			t.Errorf("Awaiting called after %d events were committed, want before any", n-before)
		}
		awaited = id
	}
	res, err := s.Request(t.Context(), RequestInput{NodeID: "trusted", Silent: &silent, AutoApprove: true, Awaiting: awaiting}, Origin{Actor: "node", Source: "10.0.0.9"})
	if err != nil || !res.Created || res.Status != StatusApproved {
		t.Fatalf("auto-approved request = %+v, %v", res, err)
	}
	if awaited != res.Request.RequestID {
		t.Fatalf("Awaiting got %q, want the request %q", awaited, res.Request.RequestID)
	}
	evs := allEvents(t, s)[before:]
	if got := eventNames(evs); !slices.Equal(got, []string{EventRequested, EventResolved + ":approved"}) {
		t.Fatalf("events %v, want the request and its approval", got)
	}
	if evs[1].Actor != "policy" || evs[1].Source != "10.0.0.9" || evs[1].Seq != evs[0].Seq+1 {
		t.Fatalf("approval event %+v after %+v", evs[1], evs[0])
	}
	token, err := s.Token(t.Context(), "trusted")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Verify(t.Context(), "trusted", token); err != nil || !v.OK {
		t.Fatalf("the auto-approved node's token does not verify: %+v %v", v, err)
	}
	// Refused inside the transaction (the admit hook), nothing is written.
	refused := errorf(CodeRateLimited, "slow down")
	if _, err := s.Request(t.Context(), RequestInput{NodeID: "flood", Silent: &silent, AutoApprove: true, Admit: func() error { return refused }}, Origin{}); err != refused {
		t.Fatalf("refused request: %v", err)
	}
	if n := len(allEvents(t, s)); n != before+2 {
		t.Fatalf("%d events after a refused request, want %d", n, before+2)
	}
}

// Absent metadata is stored as NULL, not as the JSON text null: a node
// without permissions costs nothing to read back. Rows an earlier
// version wrote with the text still read as absent.
func TestAbsentMetadataIsNull(t *testing.T) {
	s := openStore(t, newClock())
	req := mustRequest(t, s, RequestInput{NodeID: "bare"})
	if _, err := s.Approve(ctx, req.Request.RequestID, byCLI); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"requests", "nodes"} {
		var caps, commands, permissions sql.NullString
		if err := s.read.QueryRow(`SELECT caps, commands, permissions FROM `+table+` WHERE node_id = 'bare'`).Scan(&caps, &commands, &permissions); err != nil {
			t.Fatal(err)
		}
		if caps.Valid || commands.Valid || permissions.Valid {
			t.Fatalf("%s: caps %v, commands %v, permissions %v; want NULL", table, caps, commands, permissions)
		}
	}
	if _, err := s.write.Exec(`UPDATE nodes SET permissions = 'null', caps = 'null' WHERE node_id = 'bare'`); err != nil {
		t.Fatal(err)
	}
	n, err := s.Node(ctx, "bare")
	if err != nil || n.Permissions != nil || n.Caps != nil {
		t.Fatalf("node with the text null: %+v, %v", n, err)
	}
}

package rpc

import (
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
)

// noLive stands in for the WebSocket transport (there are no sockets in
// these tests): no node is connected.
type noLive struct{}

func (noLive) Entry(n db.Node) db.NodeEntry { return Entry(n, nil, 0) }
func (noLive) DropNode(string)              {}

func testProfile(t *testing.T) *Profile {
	t.Helper()
	dir := t.TempDir()
	st, err := db.Open(t.Context(), db.Options{
		Path: filepath.Join(dir, "pairing.sqlite"), KeyPath: filepath.Join(dir, "pairing.key"), Migrate: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Profile{Name: "default", Store: st, Authorized: func(string) bool { return false },
		RequestsPerAddress: 60, RequestsPerProfile: 600, Live: noLive{}}
}

func testDispatcher() *Dispatcher {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return NewDispatcher(time.Now, log, NewGuard(time.Now, log), Hooks{})
}

// The authorization matrix: every method of the table against every kind
// of session, calling the dispatcher directly. "ok" means the call got
// past role and scope (it may still fail in the store: the requests and
// nodes it names do not exist); anything else is the exact refusal.
func TestAuthorizationMatrix(t *testing.T) {
	p := testProfile(t)
	d := testDispatcher()
	sessions := []struct {
		name string
		sess Session
	}{
		{"operator admin", Session{Role: RoleOperator, Scopes: []string{ScopeAdmin}}},
		{"operator pairing", Session{Role: RoleOperator, Scopes: []string{ScopePairing}}},
		{"operator read", Session{Role: RoleOperator, Scopes: []string{ScopeRead}}},
		{"operator no scope", Session{Role: RoleOperator, Scopes: []string{}}},
		{"node pairing", Session{Role: RoleNode, NodeID: "n1"}},
		{"node paired", Session{Role: RoleNode, NodeID: "n1", Paired: true}},
		{"verifier", Session{Role: RoleVerifier}},
	}
	const (
		ok        = "ok"
		noPairing = "missing scope: operator.pairing"
		noRead    = "missing scope: operator.read"
		noAdmin   = "missing scope: operator.admin"
		notNode   = "unauthorized role: node"
		notVerif  = "unauthorized role: verifier"
	)
	pairingOnly := []string{ok, ok, noPairing, noPairing, notNode, notNode, notVerif}
	readOnly := []string{ok, ok, ok, noRead, notNode, notNode, notVerif}
	nodeReport := []string{ok, noAdmin, noAdmin, noAdmin, ok, ok, notVerif}
	matrix := []struct {
		method, params string
		want           []string
	}{
		{"health", `{}`, []string{ok, ok, ok, ok, notNode, notNode, notVerif}},
		{"node.pair.request", `{"nodeId":"n1"}`, []string{ok, ok, noPairing, noPairing, ok, notNode, notVerif}},
		{"node.pair.list", `{}`, pairingOnly},
		{"node.pair.approve", `{"requestId":"r1"}`, pairingOnly},
		{"node.pair.reject", `{"requestId":"r1"}`, pairingOnly},
		{"node.pair.verify", `{"nodeId":"n1","token":"t"}`, []string{ok, ok, noPairing, noPairing, ok, ok, ok}},
		{"node.pair.remove", `{"nodeId":"n1"}`, pairingOnly},
		{"node.rename", `{"nodeId":"n1","displayName":"x"}`, pairingOnly},
		{"node.list", `{}`, readOnly},
		{"node.describe", `{"nodeId":"n1"}`, readOnly},
		{"device.pair.list", `{}`, pairingOnly},
		{"device.pair.approve", `{"requestId":"r1"}`, pairingOnly},
		{"device.pair.reject", `{"requestId":"r1"}`, pairingOnly},
		{"device.pair.remove", `{"deviceId":"n1"}`, pairingOnly},
		{"device.pair.rename", `{"deviceId":"n1","label":"x"}`, pairingOnly},
		{"node.event", `{"anything":1}`, nodeReport},
		{"node.runnerInventory.update", `{}`, nodeReport},
		{"node.skills.update", `{}`, nodeReport},
		{"node.pluginTools.update", `{}`, nodeReport},
	}
	var covered []string
	for _, row := range matrix {
		covered = append(covered, row.method)
		for i, s := range sessions {
			sess := s.sess
			sess.Profile = p
			_, err := d.Call(t.Context(), &sess, row.method, json.RawMessage(row.params))
			got := ok
			if db.ErrorCode(err) == db.CodeForbidden {
				got = db.ErrorMessage(err)
			}
			if got != row.want[i] {
				t.Errorf("%s by %s: %q, want %q (err %v)", row.method, s.name, got, row.want[i], err)
			}
		}
	}
	// Every method announced is in the matrix, and nothing else.
	if !slices.Equal(covered, Methods) {
		t.Fatalf("matrix covers %v, the table announces %v", covered, Methods)
	}
	if len(methods) != len(Methods) {
		t.Fatalf("%d methods in the table, %d announced", len(methods), len(Methods))
	}
	// An unknown method is bad input, whoever asks.
	sess := Session{Profile: p, Role: RoleOperator, Scopes: []string{ScopeAdmin}}
	if _, err := d.Call(t.Context(), &sess, "node.pair.nuke", nil); db.ErrorCode(err) != db.CodeInvalid || db.ErrorMessage(err) != "unknown method: node.pair.nuke" {
		t.Fatalf("unknown method: %v", err)
	}
}

// A node acts only for itself.
func TestNodeActsOnlyForItself(t *testing.T) {
	p := testProfile(t)
	d := testDispatcher()
	sess := Session{Profile: p, Role: RoleNode, NodeID: "n1"}
	for method, params := range map[string]string{
		"node.pair.request": `{"nodeId":"n2"}`,
		"node.pair.verify":  `{"nodeId":"n2","token":"t"}`,
	} {
		_, err := d.Call(t.Context(), &sess, method, json.RawMessage(params))
		if db.ErrorCode(err) != db.CodeForbidden || db.ErrorMessage(err) != "unauthorized: a node may only act for its own nodeId" {
			t.Errorf("%s for another node: %v", method, err)
		}
	}
	if n, _ := p.Store.Counts(t.Context()); n.Pending != 0 {
		t.Fatalf("a refused request was stored: %+v", n)
	}
}

// The WS protocol's codes: one table, and the legacy blank nodeId.
func TestWireError(t *testing.T) {
	for _, tc := range []struct {
		err       error
		code, msg string
	}{
		{&db.Error{Code: db.CodeNotFound, Message: "unknown requestId"}, CodeInvalidRequest, "unknown requestId"},
		{&db.Error{Code: db.CodeForbidden, Message: "missing scope: operator.read"}, CodeInvalidRequest, "missing scope: operator.read"},
		{&db.Error{Code: db.CodeRateLimited, Message: "slow down"}, CodeUnavailable, "slow down"},
		{&db.Error{Code: db.CodeNotPaired, Message: "pairing required"}, CodeNotPaired, "pairing required"},
		{ErrNodeIDRequired, CodeUnavailable, "Error: nodeId required"},
		{io.ErrUnexpectedEOF, CodeUnavailable, "internal error"},
	} {
		got := WireError(tc.err)
		if got.Code != tc.code || got.Message != tc.msg {
			t.Errorf("%v → %+v, want %s %q", tc.err, got, tc.code, tc.msg)
		}
	}
	// Every domain code has a WS code.
	for _, c := range []db.Code{db.CodeInvalid, db.CodeNotFound, db.CodeConflict, db.CodeExpired, db.CodeLimit,
		db.CodeUnavailable, db.CodeInternal, db.CodeUnauthorized, db.CodeForbidden, db.CodeRateLimited,
		db.CodeTooLarge, db.CodeTimeout, db.CodeUnsupportedMediaType, db.CodeMethodNotAllowed, db.CodeNotPaired} {
		if wsCode[c] == "" {
			t.Errorf("no WS code for %s", c)
		}
	}
}

// Package rpc is pairgate's method dispatcher: who is calling (Session),
// the method table of the OpenClaw gateway protocol with its scopes and
// params schemas, and the one table from domain error codes to the
// protocol's. The WebSocket transport (server/ws) and the REST routes
// (server) both call it; it knows nothing of either.
package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
)

// Hooks are what a dispatcher reports to metrics; nil members are skipped.
type Hooks struct {
	// Called observes one call's latency and outcome.
	Called func(method string, ok bool, took time.Duration)
	// Verified counts a token verification of a profile.
	Verified func(profile string, ok bool)
}

// Dispatcher runs methods for sessions.
type Dispatcher struct {
	now   func() time.Time
	log   *slog.Logger
	guard *Guard
	hooks Hooks
}

// NewDispatcher returns a dispatcher on clock now (nil: time.Now) whose
// node requests spend from guard's rates.
func NewDispatcher(now func() time.Time, log *slog.Logger, guard *Guard, hooks Hooks) *Dispatcher {
	if now == nil {
		now = time.Now
	}
	return &Dispatcher{now: now, log: log, guard: guard, hooks: hooks}
}

// method is one entry of the method table.
type method struct {
	// scope an operator needs; "" means any operator.
	scope string
	// forNode says a node session may call it; nodeOnlyPairing narrows that
	// to pairing sessions (no token yet); forVerifier lets the
	// unauthenticated verifier call it.
	forNode, nodeOnlyPairing, forVerifier bool
	// params is checked before run; nil means params are not looked at
	// (reports pairgate ignores).
	params Schema
	run    func(ctx context.Context, d *Dispatcher, s *Session, raw json.RawMessage) (any, error)
}

// typed decodes a method's params once, after its schema has passed them,
// into P.
func typed[P any](run func(ctx context.Context, d *Dispatcher, s *Session, p P) (any, error)) func(context.Context, *Dispatcher, *Session, json.RawMessage) (any, error) {
	return func(ctx context.Context, d *Dispatcher, s *Session, raw json.RawMessage) (any, error) {
		var p P
		if t := bytes.TrimSpace(raw); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, invalid("invalid params: %s", err)
			}
		}
		return run(ctx, d, s, p)
	}
}

// Methods lists the methods in the order hello-ok announces them.
var Methods = []string{
	"health", "node.pair.request", "node.pair.list", "node.pair.approve", "node.pair.reject",
	"node.pair.verify", "node.pair.remove", "node.rename", "node.list", "node.describe",
	"device.pair.list", "device.pair.approve", "device.pair.reject", "device.pair.remove", "device.pair.rename",
	"node.event", "node.runnerInventory.update", "node.skills.update", "node.pluginTools.update",
}

// Events lists the events hello-ok announces.
var Events = []string{"connect.challenge", "tick", db.EventRequested, db.EventResolved, EventDeviceRequested, EventDeviceResolved}

var (
	requestIDParams = Schema{{Name: "requestId", Kind: String, Required: true}}
	nodeIDParams    = Schema{{Name: "nodeId", Kind: String, Required: true}}
	deviceIDParams  = Schema{{Name: "deviceId", Kind: String, Required: true}}
	noParams        = Schema{}
)

type (
	requestIDArgs struct {
		RequestID string `json:"requestId"`
	}
	nodeIDArgs struct {
		NodeID string `json:"nodeId"`
	}
	verifyArgs struct {
		NodeID string `json:"nodeId"`
		Token  string `json:"token"`
	}
	renameArgs struct {
		NodeID      string `json:"nodeId"`
		DisplayName string `json:"displayName"`
	}
	requestArgs struct {
		NodeID string `json:"nodeId"`
		db.NodeMeta
		Silent *bool `json:"silent"`
	}
)

// methods is the whole method table, served to WS connections and to the
// REST routes alike.
var methods = map[string]method{
	"health": {params: noParams, run: func(_ context.Context, d *Dispatcher, _ *Session, _ json.RawMessage) (any, error) {
		return map[string]any{"ok": true, "ts": d.now().UnixMilli()}, nil
	}},
	"node.pair.request": {scope: ScopePairing, forNode: true, nodeOnlyPairing: true, params: Schema{
		{Name: "nodeId", Kind: String, Required: true},
		{Name: "displayName", Kind: String}, {Name: "platform", Kind: String}, {Name: "version", Kind: String},
		{Name: "coreVersion", Kind: String}, {Name: "uiVersion", Kind: String}, {Name: "deviceFamily", Kind: String},
		{Name: "modelIdentifier", Kind: String}, {Name: "caps", Kind: StringList}, {Name: "commands", Kind: StringList},
		{Name: "remoteIp", Kind: String}, {Name: "silent", Kind: Bool},
	}, run: typed(runRequest)},
	"node.pair.list": {scope: ScopePairing, params: noParams, run: func(ctx context.Context, _ *Dispatcher, s *Session, _ json.RawMessage) (any, error) {
		return s.Profile.Store.List(ctx)
	}},
	"node.pair.approve": {scope: ScopePairing, params: requestIDParams, run: typed(func(ctx context.Context, _ *Dispatcher, s *Session, p requestIDArgs) (any, error) {
		return s.Profile.Store.Approve(ctx, p.RequestID, s.Origin())
	})},
	"node.pair.reject": {scope: ScopePairing, params: requestIDParams, run: typed(func(ctx context.Context, _ *Dispatcher, s *Session, p requestIDArgs) (any, error) {
		return s.Profile.Store.Reject(ctx, p.RequestID, s.Origin())
	})},
	"node.pair.verify": {scope: ScopePairing, forNode: true, forVerifier: true, params: Schema{
		{Name: "nodeId", Kind: String, Required: true}, {Name: "token", Kind: String, Required: true},
	}, run: typed(runVerify)},
	"node.pair.remove": {scope: ScopePairing, params: nodeIDParams, run: typed(func(ctx context.Context, _ *Dispatcher, s *Session, p nodeIDArgs) (any, error) {
		res, err := s.Profile.Store.Remove(ctx, p.NodeID, s.Origin())
		if err == nil {
			s.Profile.Live.DropNode(res.NodeID)
		}
		return res, err
	})},
	"node.rename": {scope: ScopePairing, params: Schema{
		{Name: "nodeId", Kind: String, Required: true}, {Name: "displayName", Kind: String, Required: true},
	}, run: typed(func(ctx context.Context, _ *Dispatcher, s *Session, p renameArgs) (any, error) {
		return s.Profile.Store.Rename(ctx, p.NodeID, p.DisplayName, s.Origin())
	})},
	"node.list": {scope: ScopeRead, params: noParams, run: func(ctx context.Context, d *Dispatcher, s *Session, _ json.RawMessage) (any, error) {
		nodes, err := NodeEntries(ctx, s.Profile)
		if err != nil {
			return nil, err
		}
		return db.NodeList{TS: d.now().UnixMilli(), Nodes: nodes}, nil
	}},
	"node.describe": {scope: ScopeRead, params: nodeIDParams, run: typed(func(ctx context.Context, d *Dispatcher, s *Session, p nodeIDArgs) (any, error) {
		n, err := s.Profile.Store.Node(ctx, p.NodeID)
		if err != nil {
			return nil, err
		}
		return db.NodeDescription{TS: d.now().UnixMilli(), NodeEntry: s.Profile.Live.Entry(n)}, nil
	})},
	"device.pair.list":    {scope: ScopePairing, params: noParams, run: runDeviceList},
	"device.pair.approve": {scope: ScopePairing, params: Schema{{Name: "requestId", Kind: String, Required: true}, {Name: "displayName", Kind: String}}, run: typed(runDeviceApprove)},
	"device.pair.reject":  {scope: ScopePairing, params: requestIDParams, run: typed(runDeviceReject)},
	"device.pair.remove":  {scope: ScopePairing, params: deviceIDParams, run: typed(runDeviceRemove)},
	"device.pair.rename":  {scope: ScopePairing, params: Schema{{Name: "deviceId", Kind: String, Required: true}, {Name: "label", Kind: AnyString, Required: true}}, run: typed(runDeviceRename)},
	// What a node host reports about itself after hello (node.event,
	// inventories of runners, skills and plugin tools) is acknowledged:
	// pairgate pairs nodes and runs nothing on them, so it keeps none of it.
	"node.event":                  {scope: ScopeAdmin, forNode: true, run: runNodeReport},
	"node.runnerInventory.update": {scope: ScopeAdmin, forNode: true, run: runNodeReport},
	"node.skills.update":          {scope: ScopeAdmin, forNode: true, run: runNodeReport},
	"node.pluginTools.update":     {scope: ScopeAdmin, forNode: true, run: runNodeReport},
}

func runNodeReport(context.Context, *Dispatcher, *Session, json.RawMessage) (any, error) {
	return map[string]bool{"ok": true}, nil
}

// Call runs one method for a session: lookup, role and scope checks,
// strict params, then the store.
func (d *Dispatcher) Call(ctx context.Context, s *Session, name string, raw json.RawMessage) (any, error) {
	m, ok := methods[name]
	if !ok {
		d.log.Debug("unknown method called", "profile", s.Profile.Name, "method", name,
			"role", s.Role, "node", s.NodeID, "remote", s.RemoteIP)
		return nil, invalid("unknown method: %s", name)
	}
	if err := m.allows(s); err != nil {
		return nil, err
	}
	if m.params != nil {
		if err := m.params.Check(raw); err != nil {
			return nil, invalid("invalid %s params: %s", name, err)
		}
	}
	start := time.Now()
	out, err := m.run(ctx, d, s, raw)
	if d.hooks.Called != nil {
		d.hooks.Called(name, err == nil, time.Since(start))
	}
	switch code := db.ErrorCode(err); {
	case err == nil:
	case ctx.Err() != nil:
		// The caller went away (a client that gave up): not a fault here.
		d.log.Info("call given up by its caller", "profile", s.Profile.Name, "method", name, "err", err)
	case code == db.CodeInternal || code == db.CodeUnavailable:
		d.log.Error("call failed", "profile", s.Profile.Name, "method", name, "err", err)
	}
	return out, err
}

// allows decides by the session's role and scopes alone.
func (m method) allows(s *Session) error {
	switch s.Role {
	case RoleOperator:
		if m.scope != "" && !s.HasScope(m.scope) {
			return forbidden("missing scope: %s", m.scope)
		}
		return nil
	case RoleNode:
		if !m.forNode || (m.nodeOnlyPairing && s.Paired) {
			return forbidden("unauthorized role: node")
		}
		return nil
	case RoleVerifier:
		if !m.forVerifier {
			return forbidden("unauthorized role: verifier")
		}
		return nil
	}
	return forbidden("unauthorized role: %s", s.Role)
}

func runVerify(ctx context.Context, d *Dispatcher, s *Session, p verifyArgs) (any, error) {
	if err := s.ownNode(p.NodeID); err != nil {
		return nil, err
	}
	v, err := s.Profile.Store.Verify(ctx, p.NodeID, p.Token)
	if err == nil && d.hooks.Verified != nil {
		d.hooks.Verified(s.Profile.Name, v.OK)
	}
	return v, err
}

func runRequest(ctx context.Context, d *Dispatcher, s *Session, p requestArgs) (any, error) {
	if strings.TrimSpace(p.NodeID) == "" {
		return nil, ErrNodeIDRequired
	}
	if err := s.ownNode(p.NodeID); err != nil {
		return nil, err
	}
	in := db.RequestInput{NodeID: p.NodeID, Silent: p.Silent}
	if s.Role == RoleNode {
		// A node's own request: what it did not say comes from its
		// connect, and its address is the one it connected from. Only a
		// new one spends from the request rates.
		p.NodeMeta = FillMeta(p.NodeMeta, s.Node)
		p.RemoteIP = s.RemoteIP
		in.Admit = func() error { return d.guard.AdmitRequest(s) }
		if s.Conn != nil {
			s.Conn.ReleaseHold()
			in.Awaiting = s.Conn.AwaitResolution
		}
	}
	in.NodeMeta = p.NodeMeta
	in.AutoApprove = s.autoApproves(in)
	var res db.RequestResult
	var err error
	if s.OpenedRequest != "" {
		res, err = s.Profile.Store.AdoptRequest(ctx, s.OpenedRequest, in, s.Origin())
		s.OpenedRequest = ""
	} else {
		res, err = s.Profile.Store.Request(ctx, in, s.Origin())
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
)

// Scopes.
const (
	scopeAdmin   = "operator.admin"
	scopePairing = "operator.pairing"
	scopeRead    = "operator.read"
)

// Roles.
const (
	roleOperator = "operator"
	roleNode     = "node"
)

// session is who is calling: an authenticated WS connection or a REST
// caller. The dispatcher decides by it alone.
type session struct {
	profile *Profile
	role    string
	scopes  []string
	// nodeID is the verified device id of a node session; paired says it
	// presented its pairing token (else it is a pairing session).
	nodeID string
	paired bool
	// tokenDigest is the SHA-256 of the node token a paired session
	// presented (nil when it came in with the operator token): an import
	// that re-keys the node ends the session.
	tokenDigest []byte
	// pendingRequest is the request a node's connect opened or found,
	// for a session held until it is decided; openedRequest is set when
	// this connect opened it.
	pendingRequest, openedRequest string
	// node is what a node said about itself in connect.
	node     db.NodeMeta
	remoteIP string
	actor    string
	now      func() time.Time
	// conn is the WS connection of the session; nil for REST.
	conn *wsConn
}

func (c *session) origin() db.Origin { return db.Origin{Actor: c.actor, Source: c.remoteIP} }

// hasScope applies the implications: admin implies every scope, pairing
// implies read.
func (c *session) hasScope(scope string) bool {
	if slices.Contains(c.scopes, scopeAdmin) || slices.Contains(c.scopes, scope) {
		return true
	}
	return scope == scopeRead && slices.Contains(c.scopes, scopePairing)
}

// method is one entry of the method table.
type method struct {
	// scope an operator needs; "" means any operator.
	scope string
	// forNode says a node session may call it; nodeOnlyPairing narrows that
	// to pairing sessions (no token yet).
	forNode, nodeOnlyPairing bool
	params                   schema
	// anyParams says params are not checked (reports pairgate ignores).
	anyParams bool
	run       func(ctx context.Context, s *Server, c *session, raw json.RawMessage) (any, error)
}

// methodNames lists the methods in the order hello-ok announces them.
var methodNames = []string{
	"health", "node.pair.request", "node.pair.list", "node.pair.approve", "node.pair.reject",
	"node.pair.verify", "node.pair.remove", "node.rename", "node.list", "node.describe",
	"device.pair.list", "device.pair.approve", "device.pair.reject", "device.pair.remove", "device.pair.rename",
	"node.event", "node.runnerInventory.update", "node.skills.update", "node.pluginTools.update",
}

// eventNames lists the events hello-ok announces.
var eventNames = []string{"connect.challenge", "tick", db.EventRequested, db.EventResolved, eventDeviceRequested, eventDeviceResolved}

var (
	requestIDParams = schema{{name: "requestId", kind: kString, required: true}}
	nodeIDParams    = schema{{name: "nodeId", kind: kString, required: true}}
	noParams        = schema{}
)

// methods is the whole method table, served to WS connections and to the
// REST RPC route alike.
var methods = map[string]method{
	"health": {params: noParams, run: func(_ context.Context, _ *Server, c *session, _ json.RawMessage) (any, error) {
		return map[string]any{"ok": true, "ts": c.now().UnixMilli()}, nil
	}},
	"node.pair.request": {scope: scopePairing, forNode: true, nodeOnlyPairing: true, params: schema{
		{name: "nodeId", kind: kString, required: true},
		{name: "displayName", kind: kString}, {name: "platform", kind: kString}, {name: "version", kind: kString},
		{name: "coreVersion", kind: kString}, {name: "uiVersion", kind: kString}, {name: "deviceFamily", kind: kString},
		{name: "modelIdentifier", kind: kString}, {name: "caps", kind: kStringList}, {name: "commands", kind: kStringList},
		{name: "remoteIp", kind: kString}, {name: "silent", kind: kBool},
	}, run: runRequest},
	"node.pair.list": {scope: scopePairing, params: noParams, run: func(ctx context.Context, _ *Server, c *session, _ json.RawMessage) (any, error) {
		return c.profile.Store.List(ctx)
	}},
	"node.pair.approve": {scope: scopePairing, params: requestIDParams, run: func(ctx context.Context, _ *Server, c *session, raw json.RawMessage) (any, error) {
		var p struct{ RequestID string }
		json.Unmarshal(raw, &p)
		return c.profile.Store.Approve(ctx, p.RequestID, c.origin())
	}},
	"node.pair.reject": {scope: scopePairing, params: requestIDParams, run: func(ctx context.Context, _ *Server, c *session, raw json.RawMessage) (any, error) {
		var p struct{ RequestID string }
		json.Unmarshal(raw, &p)
		return c.profile.Store.Reject(ctx, p.RequestID, c.origin())
	}},
	"node.pair.verify": {scope: scopePairing, forNode: true, params: schema{
		{name: "nodeId", kind: kString, required: true}, {name: "token", kind: kString, required: true},
	}, run: func(ctx context.Context, s *Server, c *session, raw json.RawMessage) (any, error) {
		var p struct{ NodeID, Token string }
		json.Unmarshal(raw, &p)
		if err := c.ownNode(p.NodeID); err != nil {
			return nil, err
		}
		v, err := c.profile.Store.Verify(ctx, p.NodeID, p.Token)
		if err == nil {
			result := "failed"
			if v.OK {
				result = "ok"
			}
			s.metrics.verifies.WithLabelValues(c.profile.Config.Name, result).Inc()
		}
		return v, err
	}},
	"node.pair.remove": {scope: scopePairing, params: nodeIDParams, run: func(ctx context.Context, s *Server, c *session, raw json.RawMessage) (any, error) {
		var p struct{ NodeID string }
		json.Unmarshal(raw, &p)
		res, err := c.profile.Store.Remove(ctx, p.NodeID, c.origin())
		if err == nil {
			s.hub(c.profile).dropNode(res.NodeID)
		}
		return res, err
	}},
	"node.rename": {scope: scopePairing, params: schema{
		{name: "nodeId", kind: kString, required: true}, {name: "displayName", kind: kString, required: true},
	}, run: func(ctx context.Context, _ *Server, c *session, raw json.RawMessage) (any, error) {
		var p struct{ NodeID, DisplayName string }
		json.Unmarshal(raw, &p)
		return c.profile.Store.Rename(ctx, p.NodeID, p.DisplayName, c.origin())
	}},
	"node.list": {scope: scopeRead, params: noParams, run: func(ctx context.Context, s *Server, c *session, _ json.RawMessage) (any, error) {
		nodes, err := s.nodeEntries(ctx, c.profile)
		if err != nil {
			return nil, err
		}
		return db.NodeList{TS: c.now().UnixMilli(), Nodes: nodes}, nil
	}},
	"node.describe": {scope: scopeRead, params: nodeIDParams, run: func(ctx context.Context, s *Server, c *session, raw json.RawMessage) (any, error) {
		var p struct{ NodeID string }
		json.Unmarshal(raw, &p)
		n, err := c.profile.Store.Node(ctx, p.NodeID)
		if err != nil {
			return nil, err
		}
		return nodeDescription{TS: c.now().UnixMilli(), NodeEntry: s.hub(c.profile).entry(n)}, nil
	}},
	"device.pair.list":            {scope: scopePairing, params: noParams, run: runDeviceList},
	"device.pair.approve":         {scope: scopePairing, params: schema{{name: "requestId", kind: kString, required: true}, {name: "displayName", kind: kString}}, run: runDeviceApprove},
	"device.pair.reject":          {scope: scopePairing, params: requestIDParams, run: runDeviceReject},
	"device.pair.remove":          {scope: scopePairing, params: deviceIDParams, run: runDeviceRemove},
	"device.pair.rename":          {scope: scopePairing, params: schema{{name: "deviceId", kind: kString, required: true}, {name: "label", kind: kAnyString, required: true}}, run: runDeviceRename},
	"node.event":                  {scope: scopeAdmin, forNode: true, anyParams: true, run: runNodeReport},
	"node.runnerInventory.update": {scope: scopeAdmin, forNode: true, anyParams: true, run: runNodeReport},
	"node.skills.update":          {scope: scopeAdmin, forNode: true, anyParams: true, run: runNodeReport},
	"node.pluginTools.update":     {scope: scopeAdmin, forNode: true, anyParams: true, run: runNodeReport},
}

// call runs one method for a session: lookup, role and scope checks,
// strict params, then the store.
func (s *Server) call(ctx context.Context, c *session, name string, raw json.RawMessage) (any, error) {
	m, ok := methods[name]
	if !ok {
		s.log.Debug("unknown method called", "profile", c.profile.Config.Name, "method", name,
			"role", c.role, "node", c.nodeID, "remote", c.remoteIP)
		return nil, invalidRequest("unknown method: %s", name)
	}
	if c.role == roleNode {
		if !m.forNode || (m.nodeOnlyPairing && c.paired) {
			return nil, invalidRequest("unauthorized role: node")
		}
	} else if m.scope != "" && !c.hasScope(m.scope) {
		e := invalidRequest("missing scope: %s", m.scope)
		e.status = http.StatusForbidden
		return nil, e
	}
	if err := m.params.check(raw); err != nil && !m.anyParams {
		return nil, invalidRequest("invalid %s params: %s", name, err)
	}
	start := time.Now()
	out, err := m.run(ctx, s, c, raw)
	s.metrics.calls.WithLabelValues(name, strconv.FormatBool(err == nil)).Observe(time.Since(start).Seconds())
	return out, err
}

// ownNode refuses a node session acting for another node.
func (c *session) ownNode(nodeID string) error {
	if c.role == roleNode && strings.TrimSpace(nodeID) != c.nodeID {
		return invalidRequest("unauthorized: a node may only act for its own nodeId")
	}
	return nil
}

type requestParams struct {
	NodeID string `json:"nodeId"`
	db.NodeMeta
	Silent *bool `json:"silent"`
}

func runRequest(ctx context.Context, s *Server, c *session, raw json.RawMessage) (any, error) {
	var p requestParams
	json.Unmarshal(raw, &p)
	if strings.TrimSpace(p.NodeID) == "" {
		// (legacy) OpenClaw 2026.1.29 answers a blank nodeId this way; it
		// is still bad input (400) over HTTP.
		return nil, &rpcError{Code: codeUnavailable, Message: "Error: nodeId required", status: http.StatusBadRequest}
	}
	if err := c.ownNode(p.NodeID); err != nil {
		return nil, err
	}
	in := db.RequestInput{NodeID: p.NodeID, Silent: p.Silent}
	if c.role == roleNode {
		// A node's own request: what it did not say comes from its
		// connect, and its address is the one it connected from. Only a
		// new one spends from the request rates.
		p.NodeMeta = fillMeta(p.NodeMeta, c.node)
		p.RemoteIP = c.remoteIP
		in.Admit = func() error { return s.admitRequest(c) }
		if c.conn != nil {
			c.conn.heldForPairing.Store(false)
		}
	}
	in.NodeMeta = p.NodeMeta
	var res db.RequestResult
	var err error
	if c.openedRequest != "" {
		res, err = c.profile.Store.AdoptRequest(ctx, c.openedRequest, in, c.origin())
		c.openedRequest = ""
	} else {
		res, err = c.profile.Store.Request(ctx, in, c.origin())
	}
	if err != nil {
		return nil, err
	}
	if c.role == roleNode && c.conn != nil {
		s.hub(c.profile).awaitResolution(c.conn, res.Request.RequestID)
	}
	if res.Created && s.autoApproves(c, res.Request) {
		if _, err := c.profile.Store.Approve(ctx, res.Request.RequestID, db.Origin{Actor: "policy", Source: c.remoteIP}); err != nil {
			return nil, err
		}
		res.Status = db.StatusApproved
	}
	return res, nil
}

// autoApproves says whether a silent request comes from a trusted network
// of the profile (autoApprove.silentCidrs). The address is the request's
// remoteIp when set (for node sessions, the connection's own), else the
// caller's.
func (s *Server) autoApproves(c *session, req db.PendingRequest) bool {
	if req.Silent == nil || !*req.Silent || len(c.profile.Config.SilentCIDRs) == 0 {
		return false
	}
	ip := req.RemoteIP
	if ip == "" {
		ip = c.remoteIP
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range c.profile.Config.SilentCIDRs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// fillMeta takes what a lacks from b.
func fillMeta(a, b db.NodeMeta) db.NodeMeta {
	pick := func(x, y string) string {
		if x != "" {
			return x
		}
		return y
	}
	a.DisplayName = pick(a.DisplayName, b.DisplayName)
	a.Platform = pick(a.Platform, b.Platform)
	a.Version = pick(a.Version, b.Version)
	a.CoreVersion = pick(a.CoreVersion, b.CoreVersion)
	a.UIVersion = pick(a.UIVersion, b.UIVersion)
	a.DeviceFamily = pick(a.DeviceFamily, b.DeviceFamily)
	a.ModelIdentifier = pick(a.ModelIdentifier, b.ModelIdentifier)
	if a.Caps == nil {
		a.Caps = b.Caps
	}
	if a.Commands == nil {
		a.Commands = b.Commands
	}
	if a.Permissions == nil {
		a.Permissions = b.Permissions
	}
	return a
}

package server

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/pairgate/pairgate/db"
)

// OpenClaw's device pairing, served over the same store and rules as node
// pairing: a node is a device of role "node", its nodeId the device id.
// The shapes are those `openclaw devices` reads (OpenClaw 2026.9).

// Device pairing events, broadcast beside their node.pair.* twins.
const (
	eventDeviceRequested = "device.pair.requested"
	eventDeviceResolved  = "device.pair.resolved"
)

// deviceTwin names the device event of each node pairing event.
var deviceTwin = map[string]string{db.EventRequested: eventDeviceRequested, db.EventResolved: eventDeviceResolved}

// deviceInfo is what device.pair.* show of a node as a device: a device
// of role node, with no operator scopes.
type deviceInfo struct {
	DeviceID     string   `json:"deviceId"`
	PublicKey    string   `json:"publicKey,omitempty"`
	DisplayName  string   `json:"displayName,omitempty"`
	Platform     string   `json:"platform,omitempty"`
	DeviceFamily string   `json:"deviceFamily,omitempty"`
	Role         string   `json:"role"`
	Roles        []string `json:"roles"`
	Scopes       []string `json:"scopes"`
	RemoteIP     string   `json:"remoteIp,omitempty"`
}

func nodeDevice(nodeID, publicKey string, m db.NodeMeta) deviceInfo {
	return deviceInfo{
		DeviceID: nodeID, PublicKey: publicKey, DisplayName: m.DisplayName, Platform: m.Platform,
		DeviceFamily: m.DeviceFamily, Role: roleNode, Roles: []string{roleNode}, Scopes: []string{}, RemoteIP: m.RemoteIP,
	}
}

// pendingDevice is a pending request as device.pair.list shows it.
type pendingDevice struct {
	RequestID string `json:"requestId"`
	deviceInfo
	Silent   *bool `json:"silent,omitempty"`
	IsRepair bool  `json:"isRepair"`
	TS       int64 `json:"ts"`
}

func toPendingDevice(r db.PendingRequest) pendingDevice {
	return pendingDevice{RequestID: r.RequestID, deviceInfo: nodeDevice(r.NodeID, r.PublicKey, r.NodeMeta),
		Silent: r.Silent, IsRepair: r.IsRepair, TS: r.TS}
}

// pairedDevice is a paired node as device.pair.list shows it: its token
// summarised, never shown.
type pairedDevice struct {
	deviceInfo
	Tokens       []tokenSummary `json:"tokens"`
	CreatedAtMs  int64          `json:"createdAtMs"`
	ApprovedAtMs int64          `json:"approvedAtMs"`
}

type tokenSummary struct {
	Role         string   `json:"role"`
	Scopes       []string `json:"scopes"`
	CreatedAtMs  int64    `json:"createdAtMs"`
	LastUsedAtMs int64    `json:"lastUsedAtMs,omitempty"`
}

func toPairedDevice(n db.Node) pairedDevice {
	return pairedDevice{
		deviceInfo:  nodeDevice(n.NodeID, n.PublicKey, n.NodeMeta),
		Tokens:      []tokenSummary{{Role: roleNode, Scopes: []string{}, CreatedAtMs: n.ApprovedAtMs, LastUsedAtMs: n.LastConnectedAtMs}},
		CreatedAtMs: n.CreatedAtMs, ApprovedAtMs: n.ApprovedAtMs,
	}
}

type deviceListing struct {
	Pending []pendingDevice `json:"pending"`
	Paired  []pairedDevice  `json:"paired"`
}

var deviceIDParams = schema{{name: "deviceId", kind: kString, required: true}}

func runDeviceList(ctx context.Context, _ *Server, c *session, _ json.RawMessage) (any, error) {
	l, err := c.profile.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := deviceListing{Pending: make([]pendingDevice, 0, len(l.Pending)), Paired: make([]pairedDevice, 0, len(l.Paired))}
	for _, r := range l.Pending {
		out.Pending = append(out.Pending, toPendingDevice(r))
	}
	for _, n := range l.Paired {
		out.Paired = append(out.Paired, toPairedDevice(n))
	}
	return out, nil
}

func runDeviceApprove(ctx context.Context, _ *Server, c *session, raw json.RawMessage) (any, error) {
	var p struct{ RequestID, DisplayName string }
	json.Unmarshal(raw, &p)
	a, err := c.profile.Store.ApproveNamed(ctx, p.RequestID, p.DisplayName, c.origin())
	if err != nil {
		return nil, err
	}
	return map[string]any{"requestId": a.RequestID, "device": toPairedDevice(a.Node)}, nil
}

func runDeviceReject(ctx context.Context, _ *Server, c *session, raw json.RawMessage) (any, error) {
	var p struct{ RequestID string }
	json.Unmarshal(raw, &p)
	r, err := c.profile.Store.Reject(ctx, p.RequestID, c.origin())
	if err != nil {
		return nil, err
	}
	return map[string]string{"requestId": r.RequestID, "deviceId": r.NodeID}, nil
}

func runDeviceRemove(ctx context.Context, s *Server, c *session, raw json.RawMessage) (any, error) {
	var p struct{ DeviceID string }
	json.Unmarshal(raw, &p)
	r, err := c.profile.Store.Remove(ctx, p.DeviceID, c.origin())
	if err != nil {
		return nil, unknownDevice(err)
	}
	s.hub(c.profile).dropNode(r.NodeID)
	return map[string]string{"deviceId": r.NodeID}, nil
}

func runDeviceRename(ctx context.Context, _ *Server, c *session, raw json.RawMessage) (any, error) {
	var p struct{ DeviceID, Label string }
	json.Unmarshal(raw, &p)
	if strings.TrimSpace(p.Label) == "" {
		return nil, invalidRequest("label required")
	}
	r, err := c.profile.Store.Rename(ctx, p.DeviceID, p.Label, c.origin())
	if err != nil {
		return nil, unknownDevice(err)
	}
	return map[string]string{"deviceId": r.NodeID, "label": r.DisplayName}, nil
}

// unknownDevice words the store's unknown node as OpenClaw words an
// unknown device.
func unknownDevice(err error) error {
	if db.ErrorCode(err) == db.CodeNotFound {
		return invalidRequest("unknown deviceId")
	}
	return err
}

// runNodeReport acknowledges what a node host reports about itself after
// hello (node.event, inventories of runners, skills and plugin tools):
// pairgate pairs nodes and runs nothing on them, so it keeps none of it.
func runNodeReport(context.Context, *Server, *session, json.RawMessage) (any, error) {
	return map[string]bool{"ok": true}, nil
}

// deviceEvent is the device.pair.* twin of a node.pair.* event, or nil
// when it has none (a removal names no request).
func (h *hub) deviceEvent(ctx context.Context, e db.Event) any {
	switch e.Name {
	case db.EventRequested:
		var r db.PendingRequest
		if json.Unmarshal(e.Payload, &r) != nil {
			return nil
		}
		// The key is not in the legacy payload; the store has it.
		if st, err := h.profile.Store.RequestStatus(ctx, r.RequestID); err == nil {
			r.PublicKey = st.Request.PublicKey
		}
		return toPendingDevice(r)
	case db.EventResolved:
		var r db.Resolution
		if json.Unmarshal(e.Payload, &r) != nil || r.RequestID == "" {
			return nil
		}
		return map[string]any{"requestId": r.RequestID, "deviceId": r.NodeID, "decision": r.Decision, "ts": r.TS}
	}
	return nil
}

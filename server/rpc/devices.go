package rpc

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
	EventDeviceRequested = "device.pair.requested"
	EventDeviceResolved  = "device.pair.resolved"
)

// DeviceTwin names the device event of each node pairing event.
var DeviceTwin = map[string]string{db.EventRequested: EventDeviceRequested, db.EventResolved: EventDeviceResolved}

// DeviceInfo is what device.pair.* show of a node as a device: a device
// of role node, with no operator scopes.
type DeviceInfo struct {
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

func nodeDevice(nodeID, publicKey string, m db.NodeMeta) DeviceInfo {
	return DeviceInfo{
		DeviceID: nodeID, PublicKey: publicKey, DisplayName: m.DisplayName, Platform: m.Platform,
		DeviceFamily: m.DeviceFamily, Role: RoleNode, Roles: []string{RoleNode}, Scopes: []string{}, RemoteIP: m.RemoteIP,
	}
}

// PendingDevice is a pending request as device.pair.list shows it.
type PendingDevice struct {
	RequestID string `json:"requestId"`
	DeviceInfo
	Silent   *bool `json:"silent,omitempty"`
	IsRepair bool  `json:"isRepair"`
	TS       int64 `json:"ts"`
}

func toPendingDevice(r db.PendingRequest) PendingDevice {
	return PendingDevice{RequestID: r.RequestID, DeviceInfo: nodeDevice(r.NodeID, r.PublicKey, r.NodeMeta),
		Silent: r.Silent, IsRepair: r.IsRepair, TS: r.TS}
}

// PairedDevice is a paired node as device.pair.list shows it: its token
// summarised, never shown.
type PairedDevice struct {
	DeviceInfo
	Tokens       []TokenSummary `json:"tokens"`
	CreatedAtMs  int64          `json:"createdAtMs"`
	ApprovedAtMs int64          `json:"approvedAtMs"`
}

type TokenSummary struct {
	Role         string   `json:"role"`
	Scopes       []string `json:"scopes"`
	CreatedAtMs  int64    `json:"createdAtMs"`
	LastUsedAtMs int64    `json:"lastUsedAtMs,omitempty"`
}

func toPairedDevice(n db.Node) PairedDevice {
	return PairedDevice{
		DeviceInfo:  nodeDevice(n.NodeID, n.PublicKey, n.NodeMeta),
		Tokens:      []TokenSummary{{Role: RoleNode, Scopes: []string{}, CreatedAtMs: n.ApprovedAtMs, LastUsedAtMs: n.LastConnectedAtMs}},
		CreatedAtMs: n.CreatedAtMs, ApprovedAtMs: n.ApprovedAtMs,
	}
}

type DeviceListing struct {
	Pending []PendingDevice `json:"pending"`
	Paired  []PairedDevice  `json:"paired"`
}

func runDeviceList(ctx context.Context, _ *Dispatcher, s *Session, _ json.RawMessage) (any, error) {
	l, err := s.Profile.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := DeviceListing{Pending: make([]PendingDevice, 0, len(l.Pending)), Paired: make([]PairedDevice, 0, len(l.Paired))}
	for _, r := range l.Pending {
		out.Pending = append(out.Pending, toPendingDevice(r))
	}
	for _, n := range l.Paired {
		out.Paired = append(out.Paired, toPairedDevice(n))
	}
	return out, nil
}

type deviceApproveArgs struct {
	RequestID   string `json:"requestId"`
	DisplayName string `json:"displayName"`
}

func runDeviceApprove(ctx context.Context, _ *Dispatcher, s *Session, p deviceApproveArgs) (any, error) {
	a, err := s.Profile.Store.ApproveNamed(ctx, p.RequestID, p.DisplayName, s.Origin())
	if err != nil {
		return nil, err
	}
	return map[string]any{"requestId": a.RequestID, "device": toPairedDevice(a.Node)}, nil
}

func runDeviceReject(ctx context.Context, _ *Dispatcher, s *Session, p requestIDArgs) (any, error) {
	r, err := s.Profile.Store.Reject(ctx, p.RequestID, s.Origin())
	if err != nil {
		return nil, err
	}
	return map[string]string{"requestId": r.RequestID, "deviceId": r.NodeID}, nil
}

type deviceIDArgs struct {
	DeviceID string `json:"deviceId"`
}

func runDeviceRemove(ctx context.Context, _ *Dispatcher, s *Session, p deviceIDArgs) (any, error) {
	r, err := s.Profile.Store.Remove(ctx, p.DeviceID, s.Origin())
	if err != nil {
		return nil, unknownDevice(err)
	}
	s.Profile.Live.DropNode(r.NodeID)
	return map[string]string{"deviceId": r.NodeID}, nil
}

type deviceRenameArgs struct {
	DeviceID string `json:"deviceId"`
	Label    string `json:"label"`
}

func runDeviceRename(ctx context.Context, _ *Dispatcher, s *Session, p deviceRenameArgs) (any, error) {
	if strings.TrimSpace(p.Label) == "" {
		return nil, invalid("label required")
	}
	r, err := s.Profile.Store.Rename(ctx, p.DeviceID, p.Label, s.Origin())
	if err != nil {
		return nil, unknownDevice(err)
	}
	return map[string]string{"deviceId": r.NodeID, "label": r.DisplayName}, nil
}

// unknownDevice words the store's unknown node as OpenClaw words an
// unknown device.
func unknownDevice(err error) error {
	if db.ErrorCode(err) == db.CodeNotFound {
		return invalid("unknown deviceId")
	}
	return err
}

// DeviceEvent is the device.pair.* twin of a node.pair.* event, or nil
// when it has none (a removal names no request).
func DeviceEvent(ctx context.Context, st *db.Store, e db.Event) any {
	switch e.Name {
	case db.EventRequested:
		if e.Request != nil {
			return toPendingDevice(*e.Request)
		}
		var r db.PendingRequest
		if json.Unmarshal(e.Payload, &r) != nil {
			return nil
		}
		// The key is not in the legacy payload; the store has it.
		if rs, err := st.RequestStatus(ctx, r.RequestID); err == nil {
			r.PublicKey = rs.Request.PublicKey
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

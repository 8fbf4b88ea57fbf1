package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/rpc"
)

func TestDevicePairingRoundTrip(t *testing.T) {
	ts := startServer(t)
	op := ts.operator(t, "/", testToken, "operator.pairing")
	d := newDevice()
	held, _ := ts.dialHost(t, d, hostConnect{displayName: "Build Box", family: "Desktop"})

	// The request is announced as a device request too.
	var requested rpc.PendingDevice
	json.Unmarshal(op.event(rpc.EventDeviceRequested, 5*time.Second).Payload, &requested)
	if requested.DeviceID != d.id || requested.PublicKey == "" || requested.Role != "node" || requested.RequestID == "" || requested.TS == 0 {
		t.Fatalf("device.pair.requested %+v", requested)
	}
	var list rpc.DeviceListing
	op.mustCall("device.pair.list", map[string]any{}, &list)
	if len(list.Pending) != 1 || len(list.Paired) != 0 || string(mustJSON(list.Pending[0])) != string(mustJSON(requested)) {
		t.Fatalf("device.pair.list %+v", list)
	}

	// Approve with a name, as `openclaw devices approve <id> <name>` does.
	f := op.call("device.pair.approve", map[string]any{"requestId": requested.RequestID, "displayName": "Lab"})
	var approved struct {
		RequestID string           `json:"requestId"`
		Device    rpc.PairedDevice `json:"device"`
	}
	json.Unmarshal(f.Payload, &approved)
	if !f.OK || approved.RequestID != requested.RequestID || approved.Device.DeviceID != d.id || approved.Device.DisplayName != "Lab" ||
		approved.Device.Role != "node" || len(approved.Device.Tokens) != 1 || approved.Device.Tokens[0].Role != "node" {
		t.Fatalf("device.pair.approve %s %+v", f.Payload, f.Error)
	}
	var resolved map[string]any
	json.Unmarshal(op.event(rpc.EventDeviceResolved, 5*time.Second).Payload, &resolved)
	if resolved["requestId"] != requested.RequestID || resolved["deviceId"] != d.id || resolved["decision"] != "approved" {
		t.Fatalf("device.pair.resolved %+v", resolved)
	}
	if code := held.waitClosed(5 * time.Second); code != websocket.CloseServiceRestart {
		t.Fatalf("held session closed %d", code)
	}
	host, hello := ts.dialHost(t, d, hostConnect{})
	grant := helloAuthOf(t, hello)
	if grant == nil || strings.Contains(string(f.Payload), grant.DeviceToken) {
		t.Fatalf("the approval showed the token, or the host got none: %+v", grant)
	}

	// Rename, as `openclaw devices rename` does.
	if f := op.call("device.pair.rename", map[string]any{"deviceId": d.id, "label": "  "}); f.OK || f.Error.Message != "label required" {
		t.Fatalf("blank label: %+v", f)
	}
	var renamed map[string]string
	op.mustCall("device.pair.rename", map[string]any{"deviceId": d.id, "label": " Lab 2 "}, &renamed)
	if renamed["deviceId"] != d.id || renamed["label"] != "Lab 2" {
		t.Fatalf("rename %+v", renamed)
	}
	op.mustCall("device.pair.list", map[string]any{}, &list)
	if len(list.Pending) != 0 || len(list.Paired) != 1 || list.Paired[0].DisplayName != "Lab 2" || list.Paired[0].PublicKey != requested.PublicKey ||
		list.Paired[0].Roles[0] != "node" || list.Paired[0].Tokens[0].LastUsedAtMs == 0 {
		t.Fatalf("paired devices %+v", list.Paired)
	}
	var nodes db.NodeList
	op.mustCall("node.list", map[string]any{}, &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].DisplayName != "Lab 2" || !nodes.Nodes[0].Connected {
		t.Fatalf("node.list %+v", nodes)
	}

	// Reject another device's request.
	other := newDevice()
	ts.dialHost(t, other, hostConnect{})
	var second rpc.PendingDevice
	for second.DeviceID != other.id {
		json.Unmarshal(op.event(rpc.EventDeviceRequested, 5*time.Second).Payload, &second)
	}
	var rejected map[string]string
	op.mustCall("device.pair.reject", map[string]any{"requestId": second.RequestID}, &rejected)
	if rejected["requestId"] != second.RequestID || rejected["deviceId"] != other.id {
		t.Fatalf("reject %+v", rejected)
	}

	// Remove: the live session is dropped and the token is dead.
	var removed map[string]string
	op.mustCall("device.pair.remove", map[string]any{"deviceId": d.id}, &removed)
	if removed["deviceId"] != d.id {
		t.Fatalf("remove %+v", removed)
	}
	if code := host.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
		t.Fatalf("removed host closed %d", code)
	}
	if verifiesOver(t, ts, d.id, grant.DeviceToken) {
		t.Fatal("a removed device's token verifies")
	}
	for method, params := range map[string]map[string]any{
		"device.pair.remove": {"deviceId": d.id},
		"device.pair.rename": {"deviceId": d.id, "label": "x"},
	} {
		if f := op.call(method, params); f.OK || f.Error.Message != "unknown deviceId" {
			t.Fatalf("%s of an unknown device: %+v", method, f)
		}
	}
	// Operators without operator.pairing may not.
	reader := ts.operator(t, "/", testToken, "operator.read")
	if f := reader.call("device.pair.list", map[string]any{}); f.OK || f.Error.Message != "missing scope: operator.pairing" {
		t.Fatalf("reader: %+v", f)
	}
}

func TestNodeReportsAreAcknowledged(t *testing.T) {
	ts := startServer(t)
	// Held (unpaired) and paired hosts alike call these right after hello.
	op := ts.operator(t, "/", testToken)
	d := newDevice()
	report := func(c *wsClient) {
		t.Helper()
		for method, params := range map[string]any{
			"node.event":                  map[string]any{"event": "node.status", "payloadJSON": `{"cpu":0.5}`},
			"node.runnerInventory.update": map[string]any{"runners": []any{map[string]any{"id": "shell"}}},
			"node.skills.update":          map[string]any{"skills": []any{}},
			"node.pluginTools.update":     nil,
		} {
			var ack map[string]bool
			c.mustCall(method, params, &ack)
			if !ack["ok"] {
				t.Fatalf("%s: %+v", method, ack)
			}
		}
		if f := c.call("node.bogus", map[string]any{}); f.OK || f.Error.Message != "unknown method: node.bogus" {
			t.Fatalf("unknown method: %+v", f)
		}
	}
	held, _ := ts.dialHost(t, d, hostConnect{})
	report(held)
	var req db.PendingRequest
	json.Unmarshal(op.event(db.EventRequested, 5*time.Second).Payload, &req)
	op.mustCall("node.pair.approve", map[string]any{"requestId": req.RequestID}, nil)
	held.waitClosed(5 * time.Second)
	paired, hello := ts.dialHost(t, d, hostConnect{})
	if helloAuthOf(t, hello) == nil {
		t.Fatal("not paired")
	}
	report(paired)
	// They are a node's: an operator without admin may not.
	reader := ts.operator(t, "/", testToken, "operator.pairing")
	if f := reader.call("node.event", map[string]any{}); f.OK {
		t.Fatal("an operator reported node events")
	}
}

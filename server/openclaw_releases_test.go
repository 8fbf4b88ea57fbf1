package server

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/syncbuf"
)

// TestRealOpenClawReleasesManageNodes runs each tested release's real
// `openclaw nodes …` (and for 2026.9.6 `openclaw devices …`) against
// pairgate and checks what it prints against pairgate's store.
func TestRealOpenClawReleasesManageNodes(t *testing.T) {
	for _, tc := range []struct {
		release string
		devices bool // `openclaw devices list|approve` too
	}{
		{release: "2026.1.29"},
		{release: "2026.2.17"},
		{release: "2026.5.7"},  // signs v3
		{release: "2026.7.35"}, // signs v3, protocol 4 only
		{release: "2026.9.6", devices: true},
	} {
		t.Run(tc.release, func(t *testing.T) {
			cli := openclaw(t, tc.release)
			ts := startServer(t)
			cli.url, cli.token = ts.ws, testToken
			store := ts.byName["default"].Store

			var created db.RequestResult
			ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"kitchen-ipad","displayName":"Kitchen iPad","platform":"iOS","caps":["canvas"]}`, &created)
			id := created.Request.RequestID

			// Tables wrap long cells; an id's first 8 characters stay on one line.
			if out := cli.ok(t, "nodes", "pending"); !strings.Contains(out, id[:8]) {
				t.Fatalf("nodes pending does not show request %s:\n%s", id, out)
			}
			var pending []db.PendingRequest
			cli.okJSON(t, &pending, "nodes", "pending", "--json")
			if len(pending) != 1 || pending[0].RequestID != id || pending[0].NodeID != "kitchen-ipad" || pending[0].DisplayName != "Kitchen iPad" {
				t.Fatalf("nodes pending --json: %+v, want request %s of kitchen-ipad", pending, id)
			}

			var approved struct {
				RequestID string
				Node      struct{ NodeID, Token string }
			}
			cli.okJSON(t, &approved, "nodes", "approve", id)
			if approved.RequestID != id || approved.Node.NodeID != "kitchen-ipad" {
				t.Fatalf("nodes approve printed %+v", approved)
			}
			if v, err := store.Verify(context.Background(), "kitchen-ipad", approved.Node.Token); err != nil || !v.OK {
				t.Fatalf("the token nodes approve printed does not verify: %+v %v", v, err)
			}

			if out := cli.ok(t, "nodes", "status"); !strings.HasPrefix(out, "Known: 1 · Paired: 1 · Connected: 0\n") {
				t.Fatalf("nodes status:\n%s", out)
			}
			var status db.NodeList
			cli.okJSON(t, &status, "nodes", "status", "--json")
			if n := status.Nodes; len(n) != 1 || n[0].NodeID != "kitchen-ipad" || n[0].DisplayName != "Kitchen iPad" || !n[0].Paired || n[0].Connected {
				t.Fatalf("nodes status --json: %+v", status)
			}

			if tc.devices {
				devicesListAndApprove(t, cli, ts)
			}
		})
	}
}

// devicesListAndApprove pairs a node device through `openclaw devices`:
// the device asks by connecting (connect-time pairing), `devices list`
// shows its request, `devices approve` pairs it. A fresh $HOME holds no
// local pairing state, so what the CLI prints came from pairgate.
func devicesListAndApprove(t *testing.T, cli realCLI, ts *testServer) {
	t.Helper()
	store := ts.byName["default"].Store
	d := newDevice()
	c, _ := ts.node(t, d, "")
	c.conn.Close()
	var req db.PendingRequest
	for deadline := time.Now().Add(10 * time.Second); req.RequestID == ""; time.Sleep(50 * time.Millisecond) {
		pending, err := store.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pending {
			if p.NodeID == d.id {
				req = p
			}
		}
		if req.RequestID == "" && time.Now().After(deadline) {
			t.Fatalf("no pending request for node device %s after its connect: %+v", d.id, pending)
		}
	}

	type deviceEntry struct{ RequestID, DeviceID, Role string }
	var list struct{ Pending, Paired []deviceEntry }
	cli.okJSON(t, &list, "devices", "list", "--json")
	found := false
	for _, p := range list.Pending {
		found = found || (p.RequestID == req.RequestID && p.DeviceID == d.id)
	}
	if !found {
		t.Fatalf("devices list --json does not show request %s of device %s: %+v", req.RequestID, d.id, list)
	}
	if out := cli.ok(t, "devices", "list"); !strings.Contains(out, req.RequestID[:8]) {
		t.Fatalf("devices list does not show request %s:\n%s", req.RequestID, out)
	}

	var approved struct {
		RequestID string
		Device    deviceEntry
	}
	cli.okJSON(t, &approved, "devices", "approve", req.RequestID, "--json")
	if approved.RequestID != req.RequestID || approved.Device.DeviceID != d.id {
		t.Fatalf("devices approve printed %+v, want request %s of %s", approved, req.RequestID, d.id)
	}
	if n, err := store.Node(context.Background(), d.id); err != nil || n.NodeID != d.id {
		t.Fatalf("after devices approve, node %s: %+v %v", d.id, n, err)
	}
	list.Paired = nil
	cli.okJSON(t, &list, "devices", "list", "--json")
	found = false
	for _, p := range list.Paired {
		found = found || p.DeviceID == d.id
	}
	if !found {
		t.Fatalf("devices list --json after approve does not list %s as paired: %+v", d.id, list)
	}
}

// nodeHost is a running `openclaw node run`.
type nodeHost struct {
	cancel         context.CancelFunc
	done           chan struct{}
	syncbuf.Buffer // its output
}

func (h *nodeHost) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// startNodeHost starts the release's node host against 127.0.0.1:port; it
// is stopped when the test ends.
func startNodeHost(t *testing.T, cli realCLI, port string) *nodeHost {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &nodeHost{cancel: cancel, done: make(chan struct{})}
	cmd := cli.command(ctx, "node", "run", "--host", "127.0.0.1", "--port", port, "--display-name", "Headless Box")
	cmd.Stdout, cmd.Stderr = h, h
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(h.done) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// freePort is a loopback port nothing listens on, so that a restarted
// pairgate can serve where the node host reconnects.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestRealOpenClawNodeHostPairs runs the real node host (`openclaw node
// run`) of a release against pairgate, as an operator would pair it: its
// request is pending soon after it starts, the operator approves it over
// REST (and starts it again if that release exits when refused), it
// connects as paired, and after pairgate restarts it connects again with
// the token it was given.
func TestRealOpenClawNodeHostPairs(t *testing.T) {
	for _, tc := range []struct {
		release string
	}{
		// Connect-time pairing and the node token in hello-ok's
		// auth.deviceToken: no real node host calls node.pair.request.
		{release: "2026.1.29"},
		{release: "2026.9.6"},
	} {
		t.Run(tc.release, func(t *testing.T) {
			cli := openclaw(t, tc.release)
			port, stateDir := freePort(t), t.TempDir()
			serve := func() *testServer {
				return startServer(t, func(s *serverSetup) {
					s.cfg.Listen = "127.0.0.1:" + port
					s.cfg.Profiles = s.cfg.Profiles[:1]
					s.cfg.Profiles[0].StateDir = stateDir
				})
			}
			ts := serve()
			cli.url, cli.token = ts.ws, testToken
			host := startNodeHost(t, cli, port)
			restarts := 0
			// keep starts the node host again where the release exits (when
			// refused, or when its gateway goes away), as its operator would.
			keep := func() {
				if host.exited() {
					t.Logf("openclaw %s node run exited; starting it again. It printed:\n%s", tc.release, host.String())
					host = startNodeHost(t, cli, port)
					restarts++
				}
			}
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf(format+"\nnode host output:\n%s\nserver log:\n%s", append(args, host.String(), ts.log)...)
			}

			// Its device identity, made on its first start: a file up to
			// 2026.2, in the state database from 2026.9 on (read with
			// `openclaw node identity --json`).
			var identity struct{ DeviceID string }
			identityFile := filepath.Join(cli.home, ".openclaw", "identity", "device.json")
			for deadline := time.Now().Add(90 * time.Second); identity.DeviceID == ""; time.Sleep(500 * time.Millisecond) {
				if raw, err := os.ReadFile(identityFile); err == nil {
					json.Unmarshal(raw, &identity)
				} else if out, _, code := cli.runBare(t, "node", "identity", "--json"); code == 0 {
					var shown struct {
						DeviceID string `json:"deviceId"`
					}
					json.Unmarshal([]byte(out), &shown)
					identity.DeviceID = shown.DeviceID
				}
				if identity.DeviceID == "" && time.Now().After(deadline) {
					fail("no device identity (neither %s nor `openclaw node identity`) after 90 s", identityFile)
				}
			}

			// Its request, pending: nodeId = its device id.
			var req db.PendingRequest
			for deadline := time.Now().Add(90 * time.Second); req.RequestID == ""; time.Sleep(100 * time.Millisecond) {
				var pending struct{ Pending []db.PendingRequest }
				ts.mustAPI(t, 200, "GET", base+"/pending", "", &pending)
				for _, p := range pending.Pending {
					if p.NodeID == identity.DeviceID {
						req = p
					}
				}
				if req.RequestID == "" && time.Now().After(deadline) {
					fail("no pending request of node device %s: %+v", identity.DeviceID, pending)
				}
			}
			if req.DisplayName != "Headless Box" {
				fail("pending request %+v, want display name Headless Box", req)
			}

			ts.mustAPI(t, 200, "POST", base+"/requests/"+req.RequestID+"/approve", "", nil)
			connected := func(ts *testServer) {
				t.Helper()
				for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
					keep()
					var nodes db.NodeList
					ts.mustAPI(t, 200, "GET", base+"/nodes", "", &nodes)
					if len(nodes.Nodes) == 1 && nodes.Nodes[0].NodeID == identity.DeviceID && nodes.Nodes[0].Connected {
						break
					}
					if time.Now().After(deadline) {
						fail("node %s not connected as paired within 90 s: %+v", identity.DeviceID, nodes)
					}
				}
				var status db.NodeList
				cli.okJSON(t, &status, "nodes", "status", "--json")
				if n := status.Nodes; len(n) != 1 || n[0].NodeID != identity.DeviceID || !n[0].Paired || !n[0].Connected {
					fail("nodes status --json: %+v", status)
				}
				if out := cli.ok(t, "nodes", "status"); !strings.Contains(out, "paired · connected") {
					fail("nodes status does not show it paired · connected:\n%s", out)
				}
			}
			connected(ts)

			// Its token outlives pairgate: stopped, started again on the
			// same port and state, it connects as paired again.
			ts.stop()
			ts = serve()
			connected(ts)
			t.Logf("openclaw %s node run: paired, and connected again after pairgate restarted; started again %d times", tc.release, restarts)
		})
	}
}

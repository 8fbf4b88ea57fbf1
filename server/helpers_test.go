package server

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/internal/syncbuf"
	"github.com/pairgate/pairgate/server/rpc"
)

// testClock is the server's clock in tests: real time unless pinned.
type testClock struct {
	mu     sync.Mutex
	pinned time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pinned.IsZero() {
		return time.Now()
	}
	return c.pinned
}

func (c *testClock) Pin(t time.Time) {
	c.mu.Lock()
	c.pinned = t
	c.mu.Unlock()
}

const testToken = "operator-token-for-tests"

// testServer is a real Server on 127.0.0.1:0 over real SQLite files.
type testServer struct {
	*Server
	url   string // http://127.0.0.1:PORT
	ws    string // ws://127.0.0.1:PORT
	clock *testClock
	log   *syncbuf.Buffer
	stop  func()
}

type serverSetup struct {
	cfg  config.Config
	opts Options
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer serves profiles "default" and "work" (token testToken and
// "work-token") unless a setup function says otherwise.
func startServer(t testing.TB, setups ...func(*serverSetup)) *testServer {
	t.Helper()
	dir := t.TempDir()
	clock := &testClock{}
	def := config.NewProfile("default", filepath.Join(dir, "default"))
	def.Token = testToken
	work := config.NewProfile("work", filepath.Join(dir, "work"))
	work.Token = "work-token"
	setup := &serverSetup{
		cfg:  config.Config{Listen: "127.0.0.1:0", Profiles: []config.Profile{def, work}},
		opts: Options{Now: clock.Now},
	}
	for _, f := range setups {
		f(setup)
	}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	var profiles []*Profile
	for _, pc := range setup.cfg.Profiles {
		p, err := OpenProfile(context.Background(), pc, log, clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		profiles = append(profiles, p)
	}
	srv := New(setup.cfg, profiles, log, setup.opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	ts := &testServer{Server: srv, clock: clock, log: logs}
	deadline := time.Now().Add(20 * time.Second)
	// Ready is set after every listener (the shared one and each profile's
	// own) has been opened and logged; the first "listening" line is the
	// shared address.
	for ts.url == "" {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil && srv.ready.Load() {
			ts.url, ts.ws = "http://"+m[1], "ws://"+m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped before listening: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not listen:\n%s", logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server run: %v", err)
			}
			for _, p := range profiles {
				p.Close()
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// frame is any server frame, decoded strictly.
type frame struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	OK      bool            `json:"ok"`
	Payload json.RawMessage `json:"payload"`
	Error   *rpc.Error      `json:"error"`
	Event   string          `json:"event"`
	Seq     int64           `json:"seq"`
}

var allowedKeys = map[string][]string{
	"res":   {"type", "id", "ok", "payload", "error"},
	"event": {"type", "event", "payload", "seq"},
}

// strictFrame decodes a frame as the real CLI would accept it: exactly the
// protocol's keys, a non-empty code and message in errors.
func strictFrame(data []byte) (frame, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return frame{}, fmt.Errorf("frame is not a JSON object: %s", data)
	}
	var f frame
	json.Unmarshal(data, &f)
	allowed, ok := allowedKeys[f.Type]
	if !ok {
		return f, fmt.Errorf("frame type %q: %s", f.Type, data)
	}
	for k := range keys {
		if !containsString(allowed, k) {
			return f, fmt.Errorf("frame has extra key %q (the real client drops it): %s", k, data)
		}
	}
	if f.Error != nil {
		var ek map[string]json.RawMessage
		json.Unmarshal(keys["error"], &ek)
		for k := range ek {
			if k != "code" && k != "message" && k != "details" {
				return f, fmt.Errorf("error has extra key %q", k)
			}
		}
		if f.Error.Code == "" || f.Error.Message == "" {
			return f, fmt.Errorf("error without code or message: %s", data)
		}
	}
	return f, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// wsClient is a strict protocol client over a real socket.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan frame
	events chan frame
	// closeCode is set when the server closes (0: no close frame seen).
	closeCode atomic.Int64
	closeText atomic.Value
	ended     chan struct{}
	nextID    atomic.Int64
	mu        sync.Mutex
}

func dialWS(t testing.TB, url string, header http.Header) (*wsClient, error) {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := &wsClient{t: t, conn: conn, frames: make(chan frame, 1024), events: make(chan frame, 1024), ended: make(chan struct{})}
	t.Cleanup(func() { conn.Close(); <-c.ended })
	go c.readLoop()
	return c, nil
}

func (c *wsClient) readLoop() {
	defer close(c.ended)
	defer close(c.frames)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.closeCode.Store(int64(ce.Code))
				c.closeText.Store(ce.Text)
			}
			return
		}
		f, err := strictFrame(data)
		if err != nil {
			c.t.Errorf("strict client: %v", err)
			continue
		}
		if f.Type == "event" && f.Event != "connect.challenge" {
			select {
			case c.events <- f:
			default:
				c.t.Errorf("event buffer full")
			}
			continue
		}
		c.frames <- f
	}
}

func (c *wsClient) next(timeout time.Duration) (frame, bool) {
	select {
	case f, ok := <-c.frames:
		return f, ok
	case <-time.After(timeout):
		c.t.Fatalf("no frame within %v", timeout)
		return frame{}, false
	}
}

// challenge reads the connect.challenge and returns its nonce.
func (c *wsClient) challenge() string {
	c.t.Helper()
	f, ok := c.next(10 * time.Second)
	if !ok || f.Event != "connect.challenge" {
		c.t.Fatalf("first frame %+v, want connect.challenge", f)
	}
	var p struct {
		Nonce string `json:"nonce"`
		TS    int64  `json:"ts"`
	}
	json.Unmarshal(f.Payload, &p)
	if p.Nonce == "" || p.TS == 0 {
		c.t.Fatalf("challenge payload %s", f.Payload)
	}
	return p.Nonce
}

func (c *wsClient) send(v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Logf("send: %v", err)
	}
}

// call sends a request and waits for its response.
func (c *wsClient) call(method string, params any) frame {
	c.t.Helper()
	id := "t-" + strconv.FormatInt(c.nextID.Add(1), 10)
	req := map[string]any{"type": "req", "id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	c.send(req)
	for {
		f, ok := c.next(10 * time.Second)
		if !ok {
			c.t.Fatalf("%s: connection closed (%d %v)", method, c.closeCode.Load(), c.closeText.Load())
		}
		if f.Type == "res" && f.ID == id {
			return f
		}
	}
}

// mustCall is call that expects success and decodes the payload.
func (c *wsClient) mustCall(method string, params any, into any) {
	c.t.Helper()
	f := c.call(method, params)
	if !f.OK {
		c.t.Fatalf("%s failed: %+v", method, f.Error)
	}
	if into != nil {
		if err := json.Unmarshal(f.Payload, into); err != nil {
			c.t.Fatalf("%s payload: %v", method, err)
		}
	}
}

// event waits for the next event with that name.
func (c *wsClient) event(name string, timeout time.Duration) frame {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f := <-c.events:
			if f.Event == name {
				return f
			}
		case <-deadline:
			c.t.Fatalf("no %s event within %v", name, timeout)
			return frame{}
		}
	}
}

// waitClosed waits for the connection to end and returns the close code.
func (c *wsClient) waitClosed(timeout time.Duration) int {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return int(c.closeCode.Load())
			}
		case <-time.After(timeout):
			c.t.Fatalf("connection not closed within %v", timeout)
		}
	}
}

func connectFrame(role string, token string, scopes []string) map[string]any {
	p := map[string]any{
		"minProtocol": 3, "maxProtocol": 3,
		"client": map[string]any{"id": "cli", "version": "test", "platform": "linux", "mode": "cli"},
		"role":   role,
	}
	if scopes != nil {
		p["scopes"] = scopes
	}
	if token != "" {
		p["auth"] = map[string]any{"token": token}
	}
	return p
}

// operator opens an operator session on path ("/" or "/ws/NAME").
func (ts *testServer) operator(t testing.TB, path, token string, scopes ...string) *wsClient {
	t.Helper()
	c, err := dialWS(t, ts.ws+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.challenge()
	var sc []string
	if len(scopes) > 0 {
		sc = scopes
	}
	f := c.call("connect", connectFrame("operator", token, sc))
	if !f.OK {
		t.Fatalf("operator connect: %+v", f.Error)
	}
	return c
}

// device is a node's Ed25519 identity.
type device struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	id   string
}

func newDevice() device {
	pub, priv, _ := ed25519.GenerateKey(nil)
	sum := sha256.Sum256(pub)
	return device{pub: pub, priv: priv, id: hex.EncodeToString(sum[:])}
}

// signedConnect builds a node connect signed for the challenge nonce.
func (d device) signedConnect(nonce, token string, signedAt time.Time) map[string]any {
	p := map[string]any{
		"minProtocol": 3, "maxProtocol": 3,
		"client": map[string]any{"id": "node-host", "displayName": "Test Node", "version": "1.0.0",
			"platform": "linux", "mode": "node"},
		"role": "node", "scopes": []string{},
		"caps": []string{"canvas"}, "commands": []string{"canvas.navigate"},
	}
	if token != "" {
		p["auth"] = map[string]any{"token": token}
	}
	ms := signedAt.UnixMilli()
	payload := strings.Join([]string{"v2", d.id, "node-host", "node", "node", "", strconv.FormatInt(ms, 10), token, nonce}, "|")
	p["device"] = map[string]any{
		"id": d.id, "publicKey": base64.RawURLEncoding.EncodeToString(d.pub),
		"signature": base64.RawURLEncoding.EncodeToString(ed25519.Sign(d.priv, []byte(payload))),
		"signedAt":  ms, "nonce": nonce,
	}
	return p
}

// node opens a node session (pairing session when token is empty).
func (ts *testServer) node(t testing.TB, d device, token string) (*wsClient, frame) {
	t.Helper()
	c, err := dialWS(t, ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	nonce := c.challenge()
	return c, c.call("connect", d.signedConnect(nonce, token, time.Now()))
}

// missingPeer ends a test whose outside peer (a browser, the real openclaw
// CLI) is not installed: skipped on a developer's machine, failed under CI
// (CI set), where .ci/run installs every peer.
func missingPeer(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + " — CI must run this test; .ci/run installs it")
	}
	t.Skip(why)
}

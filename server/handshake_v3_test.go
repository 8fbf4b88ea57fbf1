package server

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// hostConnect describes a node host's connect as OpenClaw 2026.2.26 and
// later build it: a v3 signature (or v1/v2), protocol 4.
type hostConnect struct {
	sig                        string // "v3" (default), "v2" or "v1" (no nonce)
	token, deviceToken         string
	min, max                   int
	platform, family           string
	displayName                string
	extra                      map[string]any
	tamper                     func(p map[string]any) // after signing
	role, clientID, clientMode string
}

// connect builds the params, signed by d for nonce.
func (d device) connect(nonce string, h hostConnect) map[string]any {
	if h.sig == "" {
		h.sig = "v3"
	}
	if h.min == 0 {
		h.min, h.max = 4, 4
	}
	if h.platform == "" {
		h.platform = "linux"
	}
	if h.role == "" {
		h.role, h.clientID, h.clientMode = "node", "node-host", "node"
	}
	client := map[string]any{"id": h.clientID, "version": "2026.9.6", "platform": h.platform, "mode": h.clientMode}
	if h.family != "" {
		client["deviceFamily"] = h.family
	}
	if h.displayName != "" {
		client["displayName"] = h.displayName
	}
	p := map[string]any{
		"minProtocol": h.min, "maxProtocol": h.max, "client": client,
		"role": h.role, "scopes": []string{},
	}
	if h.role == "node" {
		p["caps"], p["commands"] = []string{"system"}, []string{"system.run"}
		p["permissions"] = map[string]bool{"screen": false}
	}
	auth := map[string]any{}
	if h.token != "" {
		auth["token"] = h.token
	}
	if h.deviceToken != "" {
		auth["deviceToken"] = h.deviceToken
	}
	if len(auth) > 0 {
		p["auth"] = auth
	}
	for k, v := range h.extra {
		p[k] = v
	}
	signedToken := h.token
	if signedToken == "" {
		signedToken = h.deviceToken
	}
	ms := time.Now().UnixMilli()
	fields := []string{h.sig, d.id, h.clientID, h.clientMode, h.role, "", strconv.FormatInt(ms, 10), signedToken}
	switch h.sig {
	case "v3":
		fields = append(fields, nonce, v3Field(h.platform), v3Field(h.family))
	case "v2":
		fields = append(fields, nonce)
	}
	dev := map[string]any{
		"id": d.id, "publicKey": base64.RawURLEncoding.EncodeToString(d.pub),
		"signature": base64.RawURLEncoding.EncodeToString(ed25519.Sign(d.priv, []byte(strings.Join(fields, "|")))),
		"signedAt":  ms,
	}
	if h.sig != "v1" {
		dev["nonce"] = nonce
	}
	p["device"] = dev
	if h.tamper != nil {
		h.tamper(p)
	}
	return p
}

// dialHost opens a connection and sends d's connect.
func (ts *testServer) dialHost(t testing.TB, d device, h hostConnect) (*wsClient, frame) {
	t.Helper()
	c, err := dialWS(t, ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	nonce := c.challenge()
	return c, c.call("connect", d.connect(nonce, h))
}

func TestV3SignaturesAcceptedAndTamperingRefused(t *testing.T) {
	ts := startServer(t)
	for _, sig := range []string{"v3", "v2", "v1"} {
		t.Run(sig, func(t *testing.T) {
			_, hello := ts.dialHost(t, newDevice(), hostConnect{sig: sig, platform: " Linux ", family: "Desktop"})
			if !hello.OK {
				t.Fatalf("%s connect refused: %+v", sig, hello.Error)
			}
		})
	}
	// An operator's device signs v3 as well.
	if _, hello := ts.dialHost(t, newDevice(), hostConnect{role: "operator", clientID: "cli", clientMode: "cli", token: testToken}); !hello.OK {
		t.Fatalf("v3 operator connect refused: %+v", hello.Error)
	}
	tampered := map[string]func(p map[string]any){
		"platform":     func(p map[string]any) { p["client"].(map[string]any)["platform"] = "windows" },
		"deviceFamily": func(p map[string]any) { p["client"].(map[string]any)["deviceFamily"] = "Phone" },
		"client id":    func(p map[string]any) { p["client"].(map[string]any)["id"] = "other" },
		"deviceToken":  func(p map[string]any) { p["auth"] = map[string]any{"deviceToken": "added"} },
		"scopes":       func(p map[string]any) { p["scopes"] = []string{"operator.admin"} },
	}
	for name, tamper := range tampered {
		t.Run("tampered "+name, func(t *testing.T) {
			c, hello := ts.dialHost(t, newDevice(), hostConnect{family: "desktop", tamper: tamper})
			if hello.OK || hello.Error.Message != "device signature invalid" {
				t.Fatalf("tampered connect: %+v", hello)
			}
			if code := c.waitClosed(5 * time.Second); code != websocket.ClosePolicyViolation {
				t.Fatalf("close %d", code)
			}
		})
	}
}

// operatorWithRange connects an operator asking for protocols [min, max].
func (ts *testServer) operatorWithRange(t *testing.T, min, max int) (*wsClient, frame) {
	t.Helper()
	c, err := dialWS(t, ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.challenge()
	p := connectFrame("operator", testToken, nil)
	p["minProtocol"], p["maxProtocol"] = min, max
	return c, c.call("connect", p)
}

func TestProtocolNegotiation(t *testing.T) {
	ts := startServer(t)
	for _, tc := range []struct{ min, max, want int }{{3, 3, 3}, {4, 4, 4}, {3, 4, 4}, {1, 9, 4}} {
		_, f := ts.operatorWithRange(t, tc.min, tc.max)
		var h struct{ Protocol int }
		json.Unmarshal(f.Payload, &h)
		if !f.OK || h.Protocol != tc.want {
			t.Fatalf("[%d,%d]: ok=%v protocol %d, want %d (%+v)", tc.min, tc.max, f.OK, h.Protocol, tc.want, f.Error)
		}
	}
	// Out of range: upstream's details; 3 is offered below, 4 above.
	for _, tc := range []struct{ min, max, expected int }{{1, 2, 3}, {5, 6, 4}} {
		c, f := ts.operatorWithRange(t, tc.min, tc.max)
		type mismatch struct {
			Code                                                                         string
			ClientMinProtocol, ClientMaxProtocol, ExpectedProtocol, MinimumProbeProtocol int
		}
		var details mismatch
		b, _ := json.Marshal(f.Error.Details)
		json.Unmarshal(b, &details)
		want := mismatch{Code: "PROTOCOL_MISMATCH", ClientMinProtocol: tc.min, ClientMaxProtocol: tc.max,
			ExpectedProtocol: tc.expected, MinimumProbeProtocol: 3}
		if f.OK || f.Error.Message != "protocol mismatch" || details != want {
			t.Fatalf("[%d,%d]: %+v details %s", tc.min, tc.max, f.Error, b)
		}
		if code := c.waitClosed(5 * time.Second); code != websocket.CloseProtocolError {
			t.Fatalf("close %d", code)
		}
	}
	// The refusal's log line names the client, its mode, role and range.
	want := `reason="protocol mismatch" client=cli version=test mode=cli role=operator minProtocol=5 maxProtocol=6`
	if !strings.Contains(ts.log.String(), want) {
		t.Fatalf("log lacks %s:\n%s", want, ts.log)
	}
}

func TestConnectAcceptsWhatRealClientsSend(t *testing.T) {
	ts := startServer(t)
	real := func() map[string]any {
		p := connectFrame("operator", testToken, nil)
		p["minProtocol"], p["maxProtocol"] = 4, 4
		client := p["client"].(map[string]any)
		client["buildId"], client["timeZone"] = "abc123", "Europe/Paris"
		p["auth"] = map[string]any{"token": testToken, "deviceToken": "", "bootstrapToken": ""}
		p["computerUse"] = map[string]any{"enabled": false}
		p["workerRuns"] = map[string]any{"v": 1}
		p["modelCatalog"] = map[string]any{"agentId": "main"}
		return p
	}
	c, err := dialWS(t, ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.challenge()
	if f := c.call("connect", real()); !f.OK {
		t.Fatalf("a 2026.9 connect refused: %+v", f.Error)
	}
	// The schema is still closed, at every level.
	for path, add := range map[string]func(p map[string]any){
		"at root: unexpected property 'bogus'":                       func(p map[string]any) { p["bogus"] = true },
		"at /client: unexpected property 'bogus'":                    func(p map[string]any) { p["client"].(map[string]any)["bogus"] = "x" },
		"at /auth: unexpected property 'bogus'":                      func(p map[string]any) { p["auth"].(map[string]any)["bogus"] = "x" },
		"at /client/timeZone: must NOT have fewer than 1 characters": func(p map[string]any) { p["client"].(map[string]any)["timeZone"] = "" },
	} {
		c, err := dialWS(t, ts.ws+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.challenge()
		p := real()
		add(p)
		if f := c.call("connect", p); f.OK || f.Error.Message != "invalid connect params: "+path {
			t.Fatalf("want %q, got %+v", path, f.Error)
		}
	}
}

// v3Field is a client field as OpenClaw's v3 payload carries it: trimmed,
// ASCII capitals lowered.
func v3Field(s string) string {
	b := []byte(strings.TrimSpace(s))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

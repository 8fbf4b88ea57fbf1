package server

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/pairgate/pairgate/internal/loglimit"
)

// Finding 3 of issue #10: Host must name the listener (or allowedHosts),
// and a browser Origin must be the server's own address or allowed,
// however Host is spelled: a DNS-rebinding page, whose Host and Origin
// are both its own domain, gets nowhere.
func TestHostAndOriginChecks(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) {
		s.cfg.AllowedHosts = []string{"pairgate.example"}
		s.cfg.AllowedOrigins = []string{"https://ops.example"}
	})
	port := ts.url[strings.LastIndex(ts.url, ":")+1:]
	get := func(path, host, origin string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.url+path, nil)
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// Answers and refusals alike are never sniffed into a page.
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s (Host %s) = %d without nosniff", path, host, resp.StatusCode)
		}
		return resp.StatusCode
	}
	for host, want := range map[string]int{
		"127.0.0.1:" + port: 200, "localhost:" + port: 200, "[::1]:" + port: 200, "LOCALHOST": 200,
		"pairgate.example": 200, "pairgate.example:443": 200,
		"evil.example:" + port: 421, "192.0.2.1:" + port: 421, "127.0.0.1.evil.example": 421,
	} {
		if got := get("/healthz", host, ""); got != want {
			t.Fatalf("Host %s = %d, want %d", host, got, want)
		}
	}
	req, _ := http.NewRequest("GET", ts.url+base+"/pending", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := apiResponse{status: resp.StatusCode}
	r.body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if r.status != 421 || !strings.Contains(r.errorMessage(), "add it to allowedHosts") {
		t.Fatalf("foreign Host = %d %s", r.status, r.body)
	}

	// The rebinding page: Host and Origin agree, both foreign.
	rebind := http.Header{"Host": {"evil.example:" + port}, "Origin": {"http://evil.example:" + port}}
	if _, err := dialWS(t, ts.ws+"/", rebind); err == nil || !strings.Contains(err.Error(), "421") {
		t.Fatalf("rebinding upgrade: %v", err)
	}
	for origin, ok := range map[string]bool{
		"http://127.0.0.1:" + port: true, "http://localhost:" + port: true, "https://ops.example": true,
		"https://pairgate.example": true,
		"http://127.0.0.1:1":       false, "http://localhost": false, "https://evil.example": false, "null": false,
	} {
		_, err := dialWS(t, ts.ws+"/", http.Header{"Origin": {origin}})
		if ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "403")) {
			t.Fatalf("upgrade from Origin %s: %v", origin, err)
		}
		// A browser POST from the same origin.
		r := ts.api(t, "POST", base+"/requests", testToken, `{"nodeId":"from-page"}`, "Origin", origin)
		if ok != (r.status < 300) || (!ok && r.status != 403) {
			t.Fatalf("POST from Origin %s = %d %s", origin, r.status, r.body)
		}
	}
	// Reads with a foreign Origin are left to the browser's same-origin
	// rule; clients without Origin (the CLI, nodes) are not browsers.
	if got := get(base+"/pending", "127.0.0.1:"+port, "https://evil.example"); got != 401 {
		t.Fatalf("GET with a foreign Origin = %d", got)
	}
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
	// Every refusal is in the log, saying what was foreign.
	for _, want := range []string{`msg="request refused: foreign Host" host=evil.example:`, `msg="request refused: foreign Origin" origin=null`, `origin=https://evil.example remote=127.0.0.1:`} {
		if !strings.Contains(ts.log.String(), want) {
			t.Fatalf("the log lacks %q", want)
		}
	}
}

// A client decides how often a refusal is logged and what it holds: the
// lines are bounded in number (one a minute for the same refusal of the
// same client, loglimit.Lines a window in all) and in size (the Host,
// Origin and path cut to loglimit.MaxValue).
func TestRefusalsLogBoundedLines(t *testing.T) {
	ts := startServer(t)
	before := len(ts.log.String())
	refuse := func(i int, host, origin string) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.url+"/healthz", nil)
		req.Host = host
		if origin != "" {
			req, _ = http.NewRequest("POST", ts.url+"/api/v1/profiles/default/verify", strings.NewReader("{}"))
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest && resp.StatusCode != http.StatusForbidden {
			t.Fatalf("request %d: %d, want 421 or 403", i, resp.StatusCode)
		}
	}
	long := strings.Repeat("h", 12_000) // under the 16 KiB header bound, far over the log's cut
	for i := range 10 {                 // the same refusal again and again: one line
		refuse(i, long+".example", "")
	}
	if n := strings.Count(ts.log.String()[before:], "request refused"); n != 1 {
		t.Fatalf("%d refusal lines for 10 of the same, want 1", n)
	}
	for i := range 2 * loglimit.Lines { // each another (digits would not make one): Lines in all
		name := string(rune('a'+i/26)) + string(rune('a'+i%26))
		if i%2 == 0 {
			refuse(i, name+"-"+long+".example", "")
		} else {
			refuse(i, "", "http://"+name+"-"+strings.Repeat("o", 12_000)+".example")
		}
	}
	logged := ts.log.String()[before:]
	if n := strings.Count(logged, "request refused"); n != loglimit.Lines {
		t.Fatalf("%d refusal lines for %d refused requests, want %d", n, 10+2*loglimit.Lines, loglimit.Lines)
	}
	if len(logged) > loglimit.Lines*1000 {
		t.Fatalf("%d bytes logged for %d refusals: the client's values were not cut", len(logged), loglimit.Lines)
	}
}

// On every address (0.0.0.0, ::, as the Docker image listens), any IP is
// the server's own Host, but an Origin's IP only when it is this
// machine's: a page a LAN device serves from its own IP on the same port
// passed, and from the operator's browser opened sessions on the server
// (silent pairing from a silentCidrs address, lockouts).
func TestOriginsOnEveryAddress(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler), host: "gw-host"}
	s.cfg.AllowedOrigins = []string{"http://203.0.113.50:18789"}
	for _, listen := range []string{"0.0.0.0:18789", "[::]:18789"} {
		g := s.newHostGuard(listen, &net.TCPAddr{IP: net.ParseIP(strings.Trim(listen[:strings.LastIndex(listen, ":")], "[]")), Port: 18789})
		g.localIPs = func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.ParseIP("192.168.1.10"), Mask: net.CIDRMask(24, 32)}, &net.IPNet{IP: net.ParseIP("2001:db8::10"), Mask: net.CIDRMask(64, 128)}}, nil
		}
		for origin, want := range map[string]bool{
			"http://127.0.0.1:18789": true, "http://localhost:18789": true, "http://[::1]:18789": true,
			"http://192.168.1.10:18789": true, "http://[2001:db8::10]:18789": true, "http://gw-host:18789": true,
			"http://203.0.113.50:18789": true, // allowedOrigins
			"http://203.0.113.9:18789":  false, "https://198.51.100.7:18789": false, "http://[2001:db8::1]:18789": false,
			"http://192.168.1.11:18789": false, "http://192.168.1.10:8080": false, "http://evil.example:18789": false,
		} {
			if got := g.originAllowed(origin); got != want {
				t.Errorf("listening on %s, Origin %s allowed = %v, want %v", listen, origin, got, want)
			}
		}
		// Host is another matter: an IP in Host cannot be a rebinding name.
		if !g.hostAllowed("203.0.113.9:18789") || g.hostAllowed("evil.example:18789") {
			t.Errorf("listening on %s: Host by IP refused, or by a foreign name allowed", listen)
		}
	}
}

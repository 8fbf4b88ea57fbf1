package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/internal/loglimit"
)

// hostGuard keeps one listener to the names it answers to. Host must be
// one of the listener's own addresses (on loopback: localhost, 127.0.0.1,
// [::1]; on an unspecified address: any IP and the machine's name) or an
// allowedHosts name, so a DNS-rebinding page, which names its own domain,
// is refused. A browser's Origin, on WebSocket upgrades and on requests
// that change state, must be allowedOrigins or one of the server's own
// addresses with the listener's port; it is never judged by Host, which
// the page controls. On an unspecified address an IP is an Origin's own
// only when it is loopback or this machine's: a page served from another
// host's IP on the same port (a device on the LAN) is another site, and
// from the operator's browser it could otherwise act on this server.
type hostGuard struct {
	own   map[string]bool // host names and IPs of the listener, lower case
	anyIP bool            // listening on every address: any IP literal is its own Host
	// localIPs lists this machine's interface addresses (for Origins on
	// an unspecified address); a variable so tests can stand in.
	localIPs func() ([]net.Addr, error)
	port     string
	allowed  map[string]bool // allowedHosts, lower case, without port
	origins  map[string]bool // allowedOrigins, lower case
	log      *slog.Logger
	// refusals bounds the lines refused requests write: a client can
	// send them at will.
	refusals *loglimit.Limiter
}

func (s *Server) newHostGuard(configured string, addr net.Addr) *hostGuard {
	g := &hostGuard{own: map[string]bool{}, allowed: map[string]bool{}, origins: map[string]bool{}, log: s.log, refusals: loglimit.New(),
		localIPs: net.InterfaceAddrs}
	ap := netip.MustParseAddrPort(addr.String())
	ip := ap.Addr().Unmap()
	g.port = strconv.Itoa(int(ap.Port()))
	g.own[ip.String()] = true
	switch {
	case ip.IsUnspecified():
		g.anyIP = true
		g.own["localhost"], g.own[strings.ToLower(s.host)] = true, true
	case ip.IsLoopback():
		g.own["localhost"], g.own["127.0.0.1"], g.own["::1"] = true, true, true
	}
	if host, _, err := net.SplitHostPort(configured); err == nil && host != "" {
		g.own[strings.ToLower(host)] = true // a name given in listen
	}
	for _, h := range s.cfg.AllowedHosts {
		g.allowed[hostname(h)] = true
	}
	for _, o := range s.cfg.AllowedOrigins {
		g.origins[strings.ToLower(o)] = true
	}
	return g
}

// hostname is a Host header's (or an allowedHosts entry's) name, without
// port or IPv6 brackets, in lower case.
func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = h
	}
	return strings.ToLower(strings.Trim(hostport, "[]"))
}

func (g *hostGuard) ownName(name string) bool {
	if g.own[name] {
		return true
	}
	_, err := netip.ParseAddr(name)
	return g.anyIP && err == nil
}

func (g *hostGuard) hostAllowed(host string) bool {
	name := hostname(host)
	return host == "" || g.ownName(name) || g.allowed[name]
}

func (g *hostGuard) originAllowed(origin string) bool {
	if g.origins[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	name, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if g.allowed[name] || g.own[name] && port == g.port {
		return true
	}
	ip, err := netip.ParseAddr(name)
	return err == nil && g.anyIP && port == g.port && g.localIP(ip.Unmap())
}

// localIP says whether ip is loopback or one of this machine's interface
// addresses, read now (they change as interfaces come and go).
func (g *hostGuard) localIP(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := g.localIPs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if own, ok := netip.AddrFromSlice(n.IP); ok && own.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// wrap refuses a foreign Host (421) and a foreign browser Origin (403)
// before next sees the request. Every answer is what its Content-Type
// says (nosniff): an error echoing a client's text is never taken for a
// page.
func (g *hostGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !g.hostAllowed(r.Host) {
			g.refusals.LogFrom(hostname(r.RemoteAddr), g.log, slog.LevelWarn, "request refused: foreign Host", "host", loglimit.Value(r.Host), "remote", r.RemoteAddr,
				"method", loglimit.Value(r.Method), "path", loglimit.Value(r.URL.Path))
			refuseRequest(w, r, http.StatusMisdirectedRequest, fmt.Sprintf("this server does not answer to the name %q; if it is one of its names, add it to allowedHosts", loglimit.Value(r.Host)))
			return
		}
		origin := r.Header.Get("Origin")
		changes := r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
		if origin != "" && (changes || websocket.IsWebSocketUpgrade(r)) && !g.originAllowed(origin) {
			g.refusals.LogFrom(hostname(r.RemoteAddr), g.log, slog.LevelWarn, "request refused: foreign Origin", "origin", loglimit.Value(origin), "remote", r.RemoteAddr,
				"method", loglimit.Value(r.Method), "path", loglimit.Value(r.URL.Path), "websocket", websocket.IsWebSocketUpgrade(r))
			refuseRequest(w, r, http.StatusForbidden, fmt.Sprintf("pages from %q may not use this server; if they should, add the origin to allowedOrigins", loglimit.Value(origin)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseRequest writes the API's error shape outside echo. A request
// with a body is answered at once and its connection closed: net/http
// would read the unread body first (bodyDeadline bounds that).
func refuseRequest(w http.ResponseWriter, r *http.Request, status int, message string) {
	if r.Body != nil && r.Body != http.NoBody {
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Error: errorDetail{Code: statusCode(status), Message: message}})
}

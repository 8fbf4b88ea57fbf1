// Package server is pairgate's HTTP application: the routes (REST,
// Server-Sent Events, the WebSocket endpoints, metrics, health, the
// operator page and the OpenAPI document) and each profile's lifecycle
// (its store, hub, sweeper, webhooks and legacy-file mirror). Methods are
// run by server/rpc's dispatcher and WebSocket sessions by server/ws;
// echo is imported only here.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/replica"
	"github.com/pairgate/pairgate/server/rpc"
	"github.com/pairgate/pairgate/server/webhook"
	"github.com/pairgate/pairgate/server/ws"
)

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	// maxHeaderBytes bounds a request's header (net/http adds 4 KiB): a
	// re-test's connections with 60 KB of header each held 134 KB of
	// memory apiece (2.5 GB at 9,000).
	maxHeaderBytes = 16 << 10
	// maxUnpaired bounds the sessions of nodes waiting for pairing, and
	// a quarter of the connections the server takes at most.
	maxUnpaired = 4096
	// bodyReadTimeout bounds the upload of a request body (bodyDeadline).
	bodyReadTimeout = 10 * time.Second
	idleTimeout     = 2 * time.Minute
	shutdownTimeout = 10 * time.Second
)

// Options tune a Server; the zero value is production.
type Options struct {
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Version is announced in hello-ok.
	Version string
	// DeviceSignatureWindow is how old a device signature may be (default
	// 10 minutes). Only tests replaying recorded connects widen it.
	DeviceSignatureWindow time.Duration
	// ChallengeNonce makes the connect.challenge nonces (default: random
	// UUIDs). Only tests replaying recorded signed connects set it.
	ChallengeNonce func() string
	// HandshakeTimeout bounds the wait for connect (default 10s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write to a WebSocket or event-stream
	// client; one that does not take it is dropped (default 10s).
	WriteTimeout time.Duration
	// AnswerWriteTimeout bounds each 64 KiB of any other HTTP answer
	// (default answerWait, 2 minutes).
	AnswerWriteTimeout time.Duration
	// SessionIdleTimeout is how long a WebSocket session may send
	// nothing, pongs included, before it is closed (default 60s).
	SessionIdleTimeout time.Duration
	// TickInterval is how often every WebSocket session is sent the
	// protocol's tick (default 30s, as hello-ok announces).
	TickInterval time.Duration
	// Webhooks is the webhook retry policy (zero: production).
	Webhooks WebhookPolicy
	// Replication reports a profile's replication (db/replica), shown in
	// /readyz and /metrics; nil when nothing is replicated.
	Replication func(profile string) (replica.Status, bool)
	// WriteStallLimit is how long writes may be tried without one going
	// through before /readyz calls the profile unavailable and the log
	// says so (default 10s).
	WriteStallLimit time.Duration
	// ImportWait is how long an import waits for the one before it
	// (default importWait, 2 minutes).
	ImportWait time.Duration
	// MaxConnections bounds the connections held at once, every listener
	// and address together (default: connectionBudget, from the limit of
	// open files). Tests lower it.
	MaxConnections int
	// StalledWrite is how long a connection's write must have been
	// blocked (its client not reading) before, at MaxConnections, it may
	// be closed to make room (default stalledWrite, 250 ms).
	StalledWrite time.Duration
}

// Server serves a set of opened profiles.
type Server struct {
	cfg      config.Config
	profiles []*Profile
	byName   map[string]*Profile
	log      *slog.Logger
	now      func() time.Time
	ready    atomic.Bool
	guard    *rpc.Guard
	dispatch *rpc.Dispatcher
	ws       *ws.Transport
	host     string
	metrics  *metrics
	// writeWait bounds each write to an event stream; answerWait each
	// 64 KiB of another HTTP answer.
	writeWait, answerWait time.Duration
	// stallLimit is Options.WriteStallLimit.
	stallLimit time.Duration
	webhooks   map[string]*webhook.Dispatcher
	hookPolicy WebhookPolicy
	// replication reports a profile's replication (nil: none).
	replication func(profile string) (replica.Status, bool)
	// imports holds one slot: imports run one at a time, server-wide
	// (each holds its body and what it parsed of it, hundreds of MB at
	// the size limit); importWait bounds the wait for the slot.
	imports    chan struct{}
	importWait time.Duration
	// stalledWrite is Options.StalledWrite.
	stalledWrite time.Duration
	// maxConns is Options.MaxConnections; conns counts them (set by Run).
	maxConns int
	conns    atomic.Pointer[connLimit]
	// stopCtx ends when shutdown begins: event streams end at once, even
	// one blocked writing to a client that does not read.
	stopCtx context.Context
	stop    context.CancelFunc
}

// New returns a server for profiles that OpenProfile has opened. It does
// not own them: the caller closes them after Run returns.
func New(cfg config.Config, profiles []*Profile, log *slog.Logger, opts Options) *Server {
	s := &Server{
		cfg: cfg, profiles: profiles, byName: map[string]*Profile{}, log: log, now: opts.Now,
		writeWait: opts.WriteTimeout, metrics: newMetrics(profiles, opts.Replication), hookPolicy: opts.Webhooks,
		replication: opts.Replication, stallLimit: cmp.Or(opts.WriteStallLimit, 10*time.Second),
		answerWait: cmp.Or(opts.AnswerWriteTimeout, answerWait),
		imports:    make(chan struct{}, 1), importWait: cmp.Or(opts.ImportWait, importWait), maxConns: cmp.Or(opts.MaxConnections, connectionBudget()),
		stalledWrite: opts.StalledWrite,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.writeWait == 0 {
		s.writeWait = 10 * time.Second
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.guard = rpc.NewGuard(s.now, log)
	s.dispatch = rpc.NewDispatcher(s.now, log, s.guard, rpc.Hooks{Called: s.metrics.called, Verified: s.metrics.verified})
	s.host, _ = os.Hostname()
	s.ws = ws.New(ws.Options{
		Log: log, Dispatcher: s.dispatch, Guard: s.guard, Now: s.now, Version: opts.Version, Host: s.host,
		DeviceWindow: opts.DeviceSignatureWindow, Nonce: opts.ChallengeNonce,
		HandshakeTimeout: opts.HandshakeTimeout, WriteTimeout: opts.WriteTimeout, TickInterval: opts.TickInterval, IdleTimeout: opts.SessionIdleTimeout,
		Sessions: s.metrics.sessions, Decided: s.metrics.decided, Refused: s.metrics.refused,
		MaxConnsPerAddress: cmp.Or(cfg.MaxConnsPerAddress, config.DefaultMaxConnsPerAddress),
		MaxUnpaired:        min(maxUnpaired, s.maxConns/4),
	})
	s.metrics.registerConnections(s.maxConns, func() (open, evicted int64) {
		if l := s.conns.Load(); l != nil {
			return l.live.Load(), l.evicted.Load()
		}
		return 0, 0
	}, s.ws.Unpaired)
	warnWeakTokens(profiles, log)
	for _, p := range profiles {
		s.byName[p.Config.Name] = p
		p.rpc = &rpc.Profile{
			Name: p.Config.Name, Store: p.Store, Authorized: p.Authorized, SilentCIDRs: p.Config.SilentCIDRs,
			RequestsPerAddress: p.Config.RequestsPerAddress, RequestsPerProfile: p.Config.RequestsPerProfile,
		}
		p.hub = s.ws.NewHub(p.rpc)
	}
	return s
}

// listener is one address the server listens on; profile is set for a
// profile's own address.
type listener struct {
	ln         net.Listener
	configured string // the address as configured
	profile    *Profile
}

// Run listens on the configured addresses, runs each profile's sweeper,
// event hub and webhook deliveries, and serves until ctx is cancelled; then
// it stops accepting, finishes requests in flight, closes WebSocket clients
// (1001), stops the background work, and waits for every goroutine it started.
func (s *Server) Run(ctx context.Context) error {
	outboxEnds := map[string]int64{}
	for _, p := range s.profiles {
		var err error
		if outboxEnds[p.Config.Name], err = p.Store.LastSeq(ctx); err != nil {
			return err
		}
	}
	if err := s.openWebhooks(ctx); err != nil {
		return err
	}
	listeners, err := s.listen()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	for _, p := range s.profiles {
		wg.Go(func() { p.Store.RunSweeper(bgCtx, p.Config.SweepInterval) })
		wg.Go(func() { p.Store.WatchWrites(bgCtx, s.stallLimit) })
		wg.Go(func() { p.hub.Run(bgCtx, outboxEnds[p.Config.Name]) })
		if p.Config.MirrorLegacyFiles {
			wg.Go(func() { s.mirror(bgCtx, p) })
		} else {
			wg.Go(func() { s.checkLegacyFiles(bgCtx, p) })
		}
		if d := s.webhooks[p.Config.Name]; d != nil {
			wg.Go(func() { d.Run(bgCtx) })
		}
	}

	servers := make([]*http.Server, len(listeners))
	conns := newConnLimit(cmp.Or(s.cfg.MaxConnsPerAddress, config.DefaultMaxConnsPerAddress), s.maxConns, s.cfg.TrustedProxies, s.log)
	conns.stalled = cmp.Or(s.stalledWrite, stalledWrite)
	s.conns.Store(conns)
	serveErr := make(chan error, len(listeners))
	for i, l := range listeners {
		servers[i] = &http.Server{
			Handler:           bodyDeadline(writeDeadlines(s.stopCtx, s.answerWait, s.newHostGuard(l.configured, l.ln.Addr()).wrap(s.handler(l.profile)))),
			ReadHeaderTimeout: readHeaderTimeout,
			// net/http's default is 1 MB: a thousand connections sending
			// that much header at once held 1.4 GB (an outside attack).
			MaxHeaderBytes: maxHeaderBytes,
			IdleTimeout:    idleTimeout,
			ConnState:      conns.track,
			ConnContext:    withConn,
			ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		attrs := []any{"addr", l.ln.Addr().String()}
		if l.profile != nil {
			attrs = append(attrs, "profile", l.profile.Config.Name)
		}
		attrs = append(attrs, "page", "http://"+l.ln.Addr().String()+"/ui/")
		s.log.Info("listening", attrs...)
		wg.Go(func() {
			if err := servers[i].Serve(conns.listener(l.ln)); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		})
	}
	s.ready.Store(true)

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
		WarnStalledWrites(s.log, s.profiles) // requests waiting on one hold the shutdown
	case runErr = <-serveErr:
		s.log.Error("server failed", "err", runErr)
	}
	s.ready.Store(false)
	s.stop()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			srv.Close()
		}
	}
	closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancelClose()
	if err := s.ws.Close(closeCtx); err != nil {
		s.log.Warn("WebSocket sessions still running after the shutdown timeout", "err", err)
	}
	stopBackground()
	wg.Wait()
	s.log.Info("stopped")
	return runErr
}

func (s *Server) listen() ([]listener, error) {
	var out []listener
	fail := func(err error) ([]listener, error) {
		for _, l := range out {
			l.ln.Close()
		}
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", s.cfg.Listen, err))
	}
	out = append(out, listener{ln: ln, configured: s.cfg.Listen})
	for _, p := range s.profiles {
		if p.Config.Listen == "" {
			continue
		}
		ln, err := net.Listen("tcp", p.Config.Listen)
		if err != nil {
			return fail(fmt.Errorf("listen on %s for profile %q: %w", p.Config.Listen, p.Config.Name, err))
		}
		out = append(out, listener{ln: ln, configured: p.Config.Listen, profile: p})
	}
	return out, nil
}

// handler builds the HTTP handler of one listener. profile is nil on the
// main address and the profile on a profile's own address.
func (s *Server) handler(profile *Profile) http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = s.ipExtractor()
	e.Use(s.metrics.middleware, noStoreAPI, unescapeParams)
	s.routes(e, profile)
	return e
}

// ipExtractor believes X-Forwarded-For only from the configured trusted
// proxies. echo trusts loopback, link-local and private peers by default;
// all of that is switched off.
func (s *Server) ipExtractor() echo.IPExtractor {
	if len(s.cfg.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range s.cfg.TrustedProxies {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// noStoreAPI keeps every API answer out of caches: many carry tokens
// (approvals, exports, RPC), and the rest are live state.
func noStoreAPI(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if strings.HasPrefix(c.Request().URL.Path, "/api/") {
			c.Response().Header().Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

// bodyDeadline gives a request body bodyReadTimeout to arrive, whether or
// not a handler reads it: a slow upload cannot hold the server before
// auth. readBody sets its own deadline and lifts it once the body is in,
// so a long handler is not cut off (a read deadline passing mid-handler
// would cancel the request's context). Requests without a body (event
// streams, WebSocket upgrades) are not touched.
//
// It wraps every handler, the refusals of a foreign Host or Origin
// included: net/http reads an unread body of up to 256 KiB before it
// answers, and without a deadline a request announcing a body it never
// sends held its connection for good (a re-test held every connection
// of the server so, and nobody was answered for as long as it kept them).
//
// A body its handler left unread net/http reads (up to 256 KiB) before
// the answer goes, within that deadline, so that the client, still
// sending, is not reset and gets it; meanwhile the connection may be
// closed to make room at the connection bound, as an idle one may (a
// re-test kept every place with requests announcing a byte sent just
// before the deadline with the next request's headers).
func bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
		body := &bodyRead{ReadCloser: r.Body, r: r, want: r.ContentLength}
		r.Body = body
		next.ServeHTTP(&unreadBodyWriter{ResponseWriter: w, body: body}, r)
		body.outstanding()
	})
}

// bodyRead follows a request's body to its end. While the body is
// outstanding (a handler waits for it, or net/http will read the rest
// before the next request) the connection may be closed to make room at
// the connection bound, as an idle one may: a re-test held every place
// with bodies sent a byte a second, and with GETs of /ui/app.js
// announcing a byte never sent.
type bodyRead struct {
	io.ReadCloser
	r      *http.Request
	want   int64 // the announced length, -1 if none
	got    int64
	done   bool
	marked bool
}

func (b *bodyRead) Read(p []byte) (int, error) {
	b.outstanding()
	n, err := b.ReadCloser.Read(p)
	b.got += int64(n)
	if err == io.EOF || b.want >= 0 && b.got >= b.want {
		b.done = true
		if b.marked {
			b.marked = false
			mayEvict(b.r, false)
		}
	}
	return n, err
}

// outstanding marks the connection, once, while the body is not all in.
func (b *bodyRead) outstanding() {
	if !b.marked && !b.done {
		b.marked = true
		mayEvict(b.r, true) // until read, or the connection goes idle
	}
}

// unreadBodyWriter marks the connection when the answer begins with the
// body not all read: net/http reads the rest before it writes the
// answer's head, which for an answer over its 2 KiB buffer is inside
// the handler.
type unreadBodyWriter struct {
	http.ResponseWriter
	body *bodyRead
}

func (w *unreadBodyWriter) WriteHeader(code int) {
	w.body.outstanding()
	w.ResponseWriter.WriteHeader(code)
}

func (w *unreadBodyWriter) Write(p []byte) (int, error) {
	w.body.outstanding()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the writer below.
func (w *unreadBodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unescapeParams decodes path parameters routed on the escaped path: echo
// routes on URL.RawPath when the path holds an escaped "/" (so a%2Fb stays
// one segment) and then hands the parameters over still escaped.
func unescapeParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().URL.RawPath == "" {
			return next(c)
		}
		values := c.ParamValues()
		for i, v := range values {
			u, err := url.PathUnescape(v)
			if err != nil {
				return apiError(db.CodeInvalid, "bad escape in the path: %q", v)
			}
			values[i] = u
		}
		c.SetParamValues(values...)
		return next(c)
	}
}

// WarnStalledWrites logs each profile whose running write has waited a
// second or more: stopping, or closing the profile, waits for it to end
// (a stalled disk, a write lock held elsewhere), and the log says why.
func WarnStalledWrites(log *slog.Logger, profiles []*Profile) {
	for _, p := range profiles {
		if p.Store != nil && p.Store.Writing() && p.Store.WriteStall() >= time.Second {
			log.Warn("waiting for the profile's running write to end", "profile", p.Config.Name, "err", p.Store.Stalled(0))
		}
	}
}

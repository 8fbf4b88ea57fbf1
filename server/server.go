// Package server serves pairgate's profiles over HTTP: health, and (in
// later parts) REST, Server-Sent Events and the OpenClaw WebSocket
// protocol. It is a thin adapter over the stores in db; echo and gorilla
// are imported only here.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/config"
)

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 10 * time.Second
)

// Server serves a set of opened profiles.
type Server struct {
	cfg      config.Config
	profiles []*Profile
	byName   map[string]*Profile
	log      *slog.Logger
	ready    atomic.Bool
}

// New returns a server for profiles that OpenProfile has opened. It does
// not own them: the caller closes them after Run returns.
func New(cfg config.Config, profiles []*Profile, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, profiles: profiles, byName: map[string]*Profile{}, log: log}
	for _, p := range profiles {
		s.byName[p.Config.Name] = p
	}
	return s
}

// listener is one address the server listens on; profile is set for a
// profile's own address.
type listener struct {
	ln      net.Listener
	profile *Profile
}

// Run listens on the configured addresses, runs each profile's sweeper, and
// serves until ctx is cancelled; then it stops accepting, finishes requests
// in flight, stops the sweepers and waits for every goroutine it started.
func (s *Server) Run(ctx context.Context) error {
	listeners, err := s.listen()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sweepCtx, stopSweepers := context.WithCancel(context.WithoutCancel(ctx))
	for _, p := range s.profiles {
		wg.Go(func() { p.Store.RunSweeper(sweepCtx, p.Config.SweepInterval) })
	}

	servers := make([]*http.Server, len(listeners))
	serveErr := make(chan error, len(listeners))
	for i, l := range listeners {
		servers[i] = &http.Server{
			Handler:           s.handler(l.profile),
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		attrs := []any{"addr", l.ln.Addr().String()}
		if l.profile != nil {
			attrs = append(attrs, "profile", l.profile.Config.Name)
		}
		s.log.Info("listening", attrs...)
		wg.Go(func() {
			if err := servers[i].Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		})
	}
	s.ready.Store(true)

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case runErr = <-serveErr:
		s.log.Error("server failed", "err", runErr)
	}
	s.ready.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			srv.Close()
		}
	}
	stopSweepers()
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
	out = append(out, listener{ln: ln})
	for _, p := range s.profiles {
		if p.Config.Listen == "" {
			continue
		}
		ln, err := net.Listen("tcp", p.Config.Listen)
		if err != nil {
			return fail(fmt.Errorf("listen on %s for profile %q: %w", p.Config.Listen, p.Config.Name, err))
		}
		out = append(out, listener{ln: ln, profile: p})
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

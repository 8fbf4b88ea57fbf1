package server

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/replica"
	"github.com/pairgate/pairgate/server/webhook"
)

// routes shows the whole HTTP surface in one place. own is the profile of
// a profile's own listen address, nil on the main address.
func (s *Server) routes(e *echo.Echo, own *Profile) {
	// Every GET route answers HEAD too (HTTP asks it of every server):
	// the same status and headers, whose body net/http leaves out.
	get := func(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.GET(path, h, m...)
		e.HEAD(path, h, m...)
	}
	get("/healthz", s.handleHealthz)
	get("/readyz", s.handleReadyz(own))
	get("/metrics", s.metrics.handler())
	get("/api/v1/openapi.json", handleOpenAPI)

	// The operator page (server/ui), a frontend of the REST API below.
	get("/ui", func(c echo.Context) error { return c.Redirect(http.StatusFound, "ui/") })
	get("/ui/", handleUI)
	get("/ui/:file", handleUI)

	// WebSocket (OpenClaw gateway protocol v3 and v4), served by server/ws.
	get("/", func(c echo.Context) error { return s.serveWS(c, own, s.rootProfile(own)) })
	get("/ws/:profile", func(c echo.Context) error { return s.serveWS(c, own, s.profileAt(own, c.Param("profile"))) })

	// REST. Node-facing: verify needs no operator token.
	get("/api/v1/profiles", s.handleProfiles(own), queryParams())
	e.POST("/api/v1/profiles/:profile/verify", s.handleVerify(own), queryParams())
	// Operator routes, each with the operator check (not an echo Group:
	// a group's catch-all would answer 404 where 405 is right), then the
	// check of its query parameters.
	requireOperator := s.requireOperator(own)
	op := func(method, path string, h echo.HandlerFunc, params ...string) {
		if method == http.MethodGet {
			get("/api/v1/profiles/:profile"+path, h, requireOperator, queryParams(params...))
			return
		}
		e.Add(method, "/api/v1/profiles/:profile"+path, h, requireOperator, queryParams(params...))
	}
	op(http.MethodGet, "/pending", s.handlePending)
	op(http.MethodGet, "/nodes", s.handleNodes)
	op(http.MethodGet, "/nodes/:nodeId", s.handleNode)
	op(http.MethodPatch, "/nodes/:nodeId", s.handleRename)
	op(http.MethodDelete, "/nodes/:nodeId", s.handleRemove)
	op(http.MethodPost, "/requests", s.handleCreateRequest)
	op(http.MethodGet, "/requests/:requestId", s.handleRequestStatus)
	op(http.MethodPost, "/requests/:requestId/approve", s.handleApprove)
	op(http.MethodPost, "/requests/:requestId/reject", s.handleReject)
	op(http.MethodGet, "/events", s.handleEvents, "after")
	op(http.MethodPost, "/rpc", s.handleRPC)
	op(http.MethodGet, "/export", s.handleExport, "redactTokens")
	op(http.MethodPost, "/import", s.handleImport, "dryRun", "mode")
	op(http.MethodGet, "/webhooks", s.handleWebhooks)
	op(http.MethodPost, "/webhooks/:id/redeliver", s.handleRedeliver, "from")
}

// queryParams refuses a query parameter the route does not take (every
// route takes pretty, echo's indented JSON): a misspelt ?dryrun=true
// imported for real and ?redacttokens=true exported the tokens (an
// outside attack), where a body's unknown field is refused.
func queryParams(takes ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().URL.RawQuery == "" {
				return next(c) // most calls: nothing to check, nothing to sort
			}
			query := c.QueryParams()
			for _, name := range slices.Sorted(maps.Keys(query)) {
				if name == "pretty" {
					continue
				}
				if slices.Contains(takes, name) {
					// ?dryRun=$DRY with DRY unset imported for real; of two
					// values, one would be taken in silence.
					switch vals := query[name]; {
					case len(vals) > 1:
						return apiError(db.CodeInvalid, "query parameter %s is given %d times; give it once; nothing was done", name, len(vals))
					case vals[0] == "":
						return apiError(db.CodeInvalid, "query parameter %s is given without a value; give one, or leave it out; nothing was done", name)
					}
					continue
				}
				hint := ""
				for _, t := range takes {
					if strings.EqualFold(t, name) {
						hint = " (did you mean " + t + "?)"
					}
				}
				what := "no query parameter but pretty"
				if len(takes) > 0 {
					what = "only " + strings.Join(takes, ", ") + " (and pretty)"
				}
				if len(name) > 64 {
					name = name[:64] + "…"
				}
				return apiError(db.CodeInvalid, "unknown query parameter %q%s: this route takes %s; nothing was done", name, hint, what)
			}
			return next(c)
		}
	}
}

// profileAt resolves a profile name; a profile's own address serves only
// that profile.
func (s *Server) profileAt(own *Profile, name string) *Profile {
	p := s.byName[name]
	if own != nil && p != own {
		return nil
	}
	return p
}

// rootProfile is the profile "/" serves: a profile's own, else "default",
// else the only one.
func (s *Server) rootProfile(own *Profile) *Profile {
	switch {
	case own != nil:
		return own
	case s.byName[config.DefaultProfile] != nil:
		return s.byName[config.DefaultProfile]
	case len(s.profiles) == 1:
		return s.profiles[0]
	}
	return nil
}

// serveWS answers 404 for an unknown profile and 426 for a plain GET,
// before any upgrade.
func (s *Server) serveWS(c echo.Context, own, p *Profile) error {
	if !websocket.IsWebSocketUpgrade(c.Request()) && c.Request().URL.Path == "/" && wantsPage(c.Request()) {
		return c.Redirect(http.StatusFound, "ui/") // a browser opening the server's address
	}
	if p == nil {
		name := c.Param("profile")
		if name == "" {
			return apiError(db.CodeNotFound, "no profile is served at /: name one with /ws/NAME; known: %s", strings.Join(s.profileNames(), ", "))
		}
		return apiError(db.CodeNotFound, "%s", s.unknownProfile(own, name))
	}
	if !websocket.IsWebSocketUpgrade(c.Request()) {
		return echo.NewHTTPError(http.StatusUpgradeRequired, "this endpoint speaks the OpenClaw gateway WebSocket protocol")
	}
	// The listener's hostGuard has checked Host and Origin already.
	s.ws.Serve(c.Response(), c.Request(), p.hub, c.RealIP())
	return nil
}

func (s *Server) profileNames() []string {
	names := make([]string, len(s.profiles))
	for i, p := range s.profiles {
		names[i] = p.Config.Name
	}
	return names
}

// handleHealthz answers while the process is alive.
func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]bool{"ok": true})
}

// readiness is the body of /readyz.
type readiness struct {
	OK       bool              `json:"ok"`
	Profiles map[string]string `json:"profiles"`
	// Replication is each replicated profile's replica state; it does not
	// make the server unready (serving goes on while a replica is down).
	Replication map[string]replica.Status `json:"replication,omitempty"`
	// Webhooks is each profile's webhooks that do not deliver (retrying
	// or dead), by id; like replication, it does not make the server
	// unready. No URL or error here (no token is asked): pairgate
	// webhooks list says them.
	Webhooks map[string]map[string]webhook.Health `json:"webhooks,omitempty"`
	// Errors says why a profile is unavailable.
	Errors map[string]string `json:"errors,omitempty"`
}

// handleReadyz answers 200 when every profile's store answers and the
// server is not shutting down, 503 otherwise, naming what is wrong.
func (s *Server) handleReadyz(own *Profile) echo.HandlerFunc {
	return func(c echo.Context) error { return s.readyz(c, own) }
}

// readyz reports the profiles served here: on a profile's own address,
// that profile alone (it listed every profile, and the CLI told a user of
// that address the others' names as if served there).
func (s *Server) readyz(c echo.Context, own *Profile) error {
	r := readiness{OK: s.ready.Load(), Profiles: map[string]string{}}
	for _, p := range s.profiles {
		if own != nil && p != own {
			continue
		}
		status := "ok"
		// A write that does not return (a hung disk) holds every other
		// write behind it; the checks below would wait with them.
		err := p.Store.Stalled(s.stallLimit)
		if err == nil {
			err = p.Store.Ping(c.Request().Context())
		}
		if err == nil {
			// The reads answer; can the disk take a write? (Disk full
			// or read-only used to leave /readyz "ok" while every write
			// failed.)
			err = p.Store.WriteFailure(c.Request().Context())
		}
		if err != nil {
			status, r.OK = "unavailable", false
			if r.Errors == nil {
				r.Errors = map[string]string{}
			}
			r.Errors[p.Config.Name] = err.Error()
		}
		r.Profiles[p.Config.Name] = status
		if d := s.webhooks[p.Config.Name]; d != nil && status == "ok" {
			if hs, err := d.Health(c.Request().Context()); err == nil {
				for id, h := range hs {
					if h.State == "delivering" {
						continue
					}
					if r.Webhooks == nil {
						r.Webhooks = map[string]map[string]webhook.Health{}
					}
					if r.Webhooks[p.Config.Name] == nil {
						r.Webhooks[p.Config.Name] = map[string]webhook.Health{}
					}
					r.Webhooks[p.Config.Name][id] = h
				}
			}
		}
		if s.replication == nil {
			continue
		}
		if st, ok := s.replication(p.Config.Name); ok {
			if r.Replication == nil {
				r.Replication = map[string]replica.Status{}
			}
			r.Replication[p.Config.Name] = st
		}
	}
	if !s.ready.Load() {
		r.Profiles["server"] = "shutting down"
	}
	code := http.StatusOK
	if !r.OK {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, r)
}

package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// routes shows the whole HTTP surface in one place.
func (s *Server) routes(e *echo.Echo, _ *Profile) {
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
}

// handleHealthz answers while the process is alive.
func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]bool{"ok": true})
}

// readiness is the body of /readyz.
type readiness struct {
	OK       bool              `json:"ok"`
	Profiles map[string]string `json:"profiles"`
}

// handleReadyz answers 200 when every profile's store answers and the
// server is not shutting down, 503 otherwise, naming what is wrong.
func (s *Server) handleReadyz(c echo.Context) error {
	r := readiness{OK: s.ready.Load(), Profiles: map[string]string{}}
	for _, p := range s.profiles {
		status := "ok"
		if err := p.Store.Ping(c.Request().Context()); err != nil {
			status, r.OK = "unavailable", false
		}
		r.Profiles[p.Config.Name] = status
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

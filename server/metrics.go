package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/replica"
)

// metrics are the server's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg         *prometheus.Registry
	httpReqs    *prometheus.CounterVec
	httpSeconds *prometheus.HistogramVec
	calls       *prometheus.HistogramVec
	decisions   *prometheus.CounterVec
	verifies    *prometheus.CounterVec
	wsClients   *prometheus.GaugeVec
	wsRefused   *prometheus.CounterVec
	sseClients  *prometheus.GaugeVec
}

func newMetrics(profiles []*Profile, replication func(string) (replica.Status, bool)) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		httpReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pairgate_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "code"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pairgate_http_request_duration_seconds", Help: "HTTP request latency by route (streams excluded).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"route"}),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pairgate_call_duration_seconds", Help: "Method latency through the dispatcher (WS and REST), by method and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12),
		}, []string{"method", "ok"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pairgate_decisions_total", Help: "Pairing resolutions by profile and decision (approved, rejected, expired, removed), from the outbox.",
		}, []string{"profile", "decision"}),
		verifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pairgate_verifies_total", Help: "Token verifications by profile and result.",
		}, []string{"profile", "result"}),
		wsClients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pairgate_ws_clients", Help: "Open WebSocket sessions by profile and role.",
		}, []string{"profile", "role"}),
		wsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pairgate_ws_connects_refused_total", Help: "WebSocket connects refused, by profile and the error code answered (TOO_MANY_CONNECTIONS: before the upgrade); the log has a line a minute for the same refusal of the same client.",
		}, []string{"profile", "code"}),
		sseClients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pairgate_sse_clients", Help: "Open event streams by profile.",
		}, []string{"profile"}),
	}
	m.reg.MustRegister(m.httpReqs, m.httpSeconds, m.calls, m.decisions, m.verifies, m.wsClients, m.wsRefused, m.sseClients,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, p := range profiles {
		// Every series from the start, at 0: an alert on a rate of them
		// finds them present after a restart, before the first decision.
		for _, d := range []string{db.DecisionApproved, db.DecisionRejected, db.DecisionExpired, db.DecisionRemoved} {
			m.decisions.WithLabelValues(p.Config.Name, d)
		}
		for _, r := range []string{verifyOK, verifyFailed} {
			m.verifies.WithLabelValues(p.Config.Name, r)
		}
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_pending_requests", Help: "Live pending requests.", ConstLabels: prometheus.Labels{"profile": p.Config.Name},
		}, countOf(p.Store, func(c db.Counts) int { return c.Pending })))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_paired_nodes", Help: "Paired nodes.", ConstLabels: prometheus.Labels{"profile": p.Config.Name},
		}, countOf(p.Store, func(c db.Counts) int { return c.Paired })))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_write_stall_seconds", Help: "How long writes have been tried without one going through (0 once one does); a figure that only grows is a disk that does not answer or a write lock held elsewhere.", ConstLabels: prometheus.Labels{"profile": p.Config.Name},
		}, func() float64 { return p.Store.WriteStall().Seconds() }))
		if replication != nil {
			m.registerReplication(p.Config.Name, replication)
		}
	}
	return m
}

// registerConnections adds the connections held against the process's
// bound, and the sessions of nodes waiting for pairing against theirs:
// at either bound new clients are turned away (or, for the first, idle
// connections closed to make room).
func (m *metrics) registerConnections(max int, conns func() (open, evicted int64), unpaired func() (open, max int64)) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_connections", Help: "Connections held open (HTTP and WebSocket, every listener).",
		}, func() float64 { open, _ := conns(); return float64(open) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_connections_max", Help: "The bound on pairgate_connections (the open-file limit less a reserve): at it, idle connections are closed to make room, then new ones refused 503.",
		}, func() float64 { return float64(max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pairgate_connections_evicted_total", Help: "Idle connections closed to make room at pairgate_connections_max.",
		}, func() float64 { _, evicted := conns(); return float64(evicted) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_unpaired_sessions", Help: "WebSocket sessions of nodes not paired (waiting for pairing), every profile together.",
		}, func() float64 { open, _ := unpaired(); return float64(open) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_unpaired_sessions_max", Help: "The bound on pairgate_unpaired_sessions: at it, new nodes are refused (UNAVAILABLE, close 1013).",
		}, func() float64 { _, max := unpaired(); return float64(max) }),
	)
}

// registerReplication adds a replicated profile's replica state.
func (m *metrics) registerReplication(profile string, replication func(string) (replica.Status, bool)) {
	if _, ok := replication(profile); !ok {
		return
	}
	labels := prometheus.Labels{"profile": profile}
	of := func(pick func(replica.Status) float64) func() float64 {
		return func() float64 {
			st, _ := replication(profile)
			return pick(st)
		}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_replication_lag_seconds", Help: "Age of the newest change known to be on the replica: what a host death would lose now.", ConstLabels: labels,
		}, of(func(st replica.Status) float64 { return float64(st.LagMs) / 1000 })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pairgate_replication_last_sync_timestamp_seconds", Help: "When the last successful sync to the replica began (0: none yet).", ConstLabels: labels,
		}, of(func(st replica.Status) float64 { return float64(st.SyncedAtMs) / 1000 })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pairgate_replication_errors_total", Help: "Failed syncs to the replica.", ConstLabels: labels,
		}, of(func(st replica.Status) float64 { return float64(st.Errors) })),
	)
}

func countOf(st *db.Store, pick func(db.Counts) int) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := st.Counts(ctx)
		if err != nil {
			return -1
		}
		return float64(pick(c))
	}
}

// The results of pairgate_verifies_total.
const verifyOK, verifyFailed = "ok", "failed"

// middleware counts every HTTP request by its route template.
func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		if err != nil {
			// The error handler runs after middleware; count what it will send.
			status = statusOf(err)
		}
		m.httpReqs.WithLabelValues(route, methodLabel(c.Request().Method), strconv.Itoa(status)).Inc()
		if c.Response().Header().Get(echo.HeaderContentType) != "text/event-stream" && route != "/" && route != "/ws/:profile" {
			m.httpSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
		return err
	}
}

// methodLabel is the method as a metric label: a method HTTP defines, or
// "other". A client may send any token as its method; each label value is
// a series kept for the life of the process.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

func (m *metrics) handler() echo.HandlerFunc {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return echo.WrapHandler(h)
}

// called observes a dispatcher call (rpc.Hooks).
func (m *metrics) called(method string, ok bool, took time.Duration) {
	m.calls.WithLabelValues(method, strconv.FormatBool(ok)).Observe(took.Seconds())
}

// verified counts a token verification (rpc.Hooks).
func (m *metrics) verified(profile string, ok bool) {
	result := verifyFailed
	if ok {
		result = verifyOK
	}
	m.verifies.WithLabelValues(profile, result).Inc()
}

// sessions follows the open WebSocket sessions (ws.Options).
func (m *metrics) sessions(profile, role string, delta int) {
	m.wsClients.WithLabelValues(profile, role).Add(float64(delta))
}

// refused counts a refused WebSocket connect (ws.Options).
func (m *metrics) refused(profile, code string) {
	m.wsRefused.WithLabelValues(profile, code).Inc()
}

// decided counts a resolution the hub delivered (ws.Options).
func (m *metrics) decided(profile, decision string) {
	m.decisions.WithLabelValues(profile, decision).Inc()
}

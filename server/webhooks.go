package server

import (
	"context"
	"fmt"

	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/webhook"
)

// WebhookPolicy overrides the webhook retry policy; the zero value is
// production (webhook.Backoff, webhook.DefaultRetryWindow). Tests shorten it.
type WebhookPolicy struct {
	Backoff     func(attempt int) time.Duration
	RetryWindow time.Duration
}

// openWebhooks prepares the dispatcher of every profile that has webhooks.
func (s *Server) openWebhooks(ctx context.Context) error {
	s.webhooks = map[string]*webhook.Dispatcher{}
	for _, p := range s.profiles {
		var ids []string
		for _, w := range p.Config.Webhooks {
			ids = append(ids, w.ID())
		}
		gone, err := p.Store.ForgetWebhooks(ctx, ids)
		if err != nil {
			return fmt.Errorf("profile %q: forget the webhooks taken out of its configuration: %w", p.Config.Name, err)
		}
		for _, w := range gone {
			s.log.Info("webhook taken out of the configuration: its delivery state is forgotten; added back, it starts at the newest event",
				"profile", p.Config.Name, "webhook", w.ID, "cursor", w.Cursor)
		}
		if len(p.Config.Webhooks) == 0 {
			continue
		}
		d, err := webhook.New(ctx, webhook.Options{
			Profile: p.Config.Name, Store: p.Store, Endpoints: p.Config.Webhooks, Log: s.log,
			Subscribe: p.hub.Subscribe, Now: s.now, Backoff: s.hookPolicy.Backoff, RetryWindow: s.hookPolicy.RetryWindow,
		})
		if err != nil {
			return err
		}
		s.webhooks[p.Config.Name] = d
	}
	s.metrics.reg.MustRegister(webhookMetrics{s})
	return nil
}

// handleWebhooks lists the profile's endpoints and where each one stands.
func (s *Server) handleWebhooks(c echo.Context) error {
	states := []webhook.State{}
	if d := s.webhooks[profileOf(c).Config.Name]; d != nil {
		var err error
		if states, err = d.States(c.Request().Context()); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"webhooks": states})
}

// handleRedeliver restarts an endpoint at ?from=SEQ (default: the event
// after its cursor), out of a dead letter or backoff.
func (s *Server) handleRedeliver(c echo.Context) error {
	var from int64
	if q := c.QueryParam("from"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < 1 {
			return apiError(db.CodeInvalid, "from must be an event seq (a whole number ≥ 1)")
		}
		from = n
	}
	p := profileOf(c)
	d := s.webhooks[p.Config.Name]
	if d == nil {
		return apiError(db.CodeNotFound, "profile %q has no webhooks; declare them under webhooks: in its configuration", p.Config.Name)
	}
	before, _ := p.Store.Webhook(c.Request().Context(), c.Param("id"))
	st, err := d.Redeliver(c.Request().Context(), c.Param("id"), from)
	if err != nil {
		return err
	}
	s.log.Info("webhook redelivery requested", "profile", p.Config.Name, "webhook", st.ID,
		"from", from, "resumesWith", st.Cursor+1, "lag", st.Lag, "remote", c.RealIP(),
		"clearedAttempts", before.Attempts, "wasDead", before.DeadAtMs != 0)
	return c.JSON(http.StatusOK, st)
}

// webhookMetrics reads every endpoint's state at scrape time.
type webhookMetrics struct{ s *Server }

var (
	webhookLabels    = []string{"profile", "webhook"}
	webhookDelivered = prometheus.NewDesc("pairgate_webhook_deliveries_total", "Events delivered to a webhook since start.", webhookLabels, nil)
	webhookFailures  = prometheus.NewDesc("pairgate_webhook_failures_total", "Failed webhook delivery attempts since start.", webhookLabels, nil)
	webhookLag       = prometheus.NewDesc("pairgate_webhook_lag_events", "Events a webhook is behind the newest one.", webhookLabels, nil)
	webhookDead      = prometheus.NewDesc("pairgate_webhook_dead", "1 while a webhook is dead-lettered (redeliver resumes it).", webhookLabels, nil)
	webhookPruned    = prometheus.NewDesc("pairgate_webhook_undelivered_pruned_total", "Events retention pruned before a webhook delivered them (never sent), since start.", webhookLabels, nil)
	webhookFailing   = prometheus.NewDesc("pairgate_webhook_failing_seconds", "How long a webhook has failed to deliver its next event (0 while it delivers): alert on it long before it is dead.", webhookLabels, nil)
)

func (webhookMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{webhookDelivered, webhookFailures, webhookLag, webhookDead, webhookPruned, webhookFailing} {
		ch <- d
	}
}

func (m webhookMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name, d := range m.s.webhooks {
		states, err := d.States(ctx)
		if err != nil {
			continue
		}
		for _, st := range states {
			dead := 0.0
			if st.State == "dead" {
				dead = 1
			}
			ch <- prometheus.MustNewConstMetric(webhookDelivered, prometheus.CounterValue, float64(st.Delivered), name, st.ID)
			ch <- prometheus.MustNewConstMetric(webhookFailures, prometheus.CounterValue, float64(st.Failures), name, st.ID)
			ch <- prometheus.MustNewConstMetric(webhookLag, prometheus.GaugeValue, float64(st.Lag), name, st.ID)
			ch <- prometheus.MustNewConstMetric(webhookDead, prometheus.GaugeValue, dead, name, st.ID)
			ch <- prometheus.MustNewConstMetric(webhookPruned, prometheus.CounterValue, float64(st.Undelivered), name, st.ID)
			failing := 0.0
			if st.State != "delivering" && st.FailingSinceMs > 0 {
				failing = max(0, float64(m.s.now().UnixMilli()-st.FailingSinceMs)/1000)
			}
			ch <- prometheus.MustNewConstMetric(webhookFailing, prometheus.GaugeValue, failing, name, st.ID)
		}
	}
}

package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
)

// DefaultRetryWindow is how long an event is retried before its endpoint
// is dead-lettered.
const DefaultRetryWindow = 24 * time.Hour

// batch bounds the events read from the outbox at once.
const batch = 64

// Backoff is the wait before retry number attempt (1, 2, …): 5s doubling
// up to an hour, each drawn between half and all of it so that endpoints
// failing together do not retry together.
func Backoff(attempt int) time.Duration {
	d := time.Hour
	if attempt < 11 {
		d = min(5*time.Second<<(attempt-1), time.Hour)
	}
	return d/2 + rand.N(d/2+1)
}

// Options configure a Dispatcher.
type Options struct {
	Profile   string
	Store     *db.Store
	Endpoints []config.Webhook
	Log       *slog.Logger
	// Subscribe registers a channel that gets the profile's new events
	// (the event hub's fan-out, woken on commit); they only wake a worker,
	// which reads the outbox itself. It returns the unsubscribe function.
	Subscribe func(chan db.Event) func()
	// Now is the clock (nil: time.Now); Backoff (nil: Backoff) and
	// RetryWindow (0: DefaultRetryWindow) set the retry policy. Tests
	// shorten them.
	Now         func() time.Time
	Backoff     func(attempt int) time.Duration
	RetryWindow time.Duration
}

// Dispatcher runs the deliveries of one profile's endpoints.
type Dispatcher struct {
	opts      Options
	endpoints []*endpoint
}

type endpoint struct {
	cfg    config.Webhook
	id     string
	key    []byte
	client *http.Client
	// start is the cursor at New.
	start db.WebhookCursor
	// poke tells the worker that a redeliver moved its cursor.
	poke chan struct{}
	// Counted since start, for metrics and the API.
	delivered, failures atomic.Int64
}

// New prepares the endpoints and reads their cursors (a new endpoint's is
// created at the newest event: it gets what happens from now on); their
// secrets were checked by the configuration. An endpoint reached over
// plain http on another host is logged as a warning.
func New(ctx context.Context, opts Options) (*Dispatcher, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Backoff == nil {
		opts.Backoff = Backoff
	}
	if opts.RetryWindow == 0 {
		opts.RetryWindow = DefaultRetryWindow
	}
	d := &Dispatcher{opts: opts}
	wants := map[string]config.Webhook{}
	for _, cfg := range opts.Endpoints {
		wants[cfg.ID()] = cfg
	}
	// The sweeper counts as an endpoint's loss only the pruned events it
	// would have sent.
	opts.Store.SetWebhookFilter(func(id, event string) bool {
		cfg, ok := wants[id]
		return !ok || cfg.Wants(event)
	})
	for _, cfg := range opts.Endpoints {
		key, err := cfg.SigningKey()
		if err != nil {
			return nil, fmt.Errorf("profile %q: webhook %s: secret %v", opts.Profile, cfg.RedactedURL(), err)
		}
		if cfg.PlainHTTPElsewhere() {
			opts.Log.Warn("webhook is plain http to a host other than loopback: events and signatures cross the network unencrypted; use https",
				"profile", opts.Profile, "webhook", cfg.ID(), "url", cfg.RedactedURL())
		}
		start, created, err := opts.Store.OpenWebhook(ctx, cfg.ID())
		if err != nil {
			return nil, fmt.Errorf("profile %q: webhook %s: %w", opts.Profile, cfg.ID(), err)
		}
		if created {
			opts.Log.Info("new webhook: it gets the events after the newest one (pairgate webhooks redeliver --from replays older ones)",
				"profile", opts.Profile, "webhook", cfg.ID(), "url", cfg.RedactedURL(), "after", start.Cursor)
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		d.endpoints = append(d.endpoints, &endpoint{
			cfg: cfg, id: cfg.ID(), key: key, start: start, poke: make(chan struct{}, 1),
			client: &http.Client{
				Timeout:   cfg.Timeout,
				Transport: transport,
				// A redirect is an answer of its own: not followed, not a success.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
		})
	}
	return d, nil
}

// Run delivers until ctx is cancelled, one goroutine per endpoint, and
// returns when all of them have stopped.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ep := range d.endpoints {
		wg.Go(func() { d.serve(ctx, ep) })
	}
	wg.Wait()
}

// serve is one endpoint's worker: deliver what follows the cursor, back
// off after a failure, stop at a dead letter, and sleep until an event,
// a redeliver or the end of a backoff wakes it.
func (d *Dispatcher) serve(ctx context.Context, ep *endpoint) {
	wake := make(chan db.Event, 1)
	defer d.opts.Subscribe(wake)()
	defer ep.client.CloseIdleConnections()
	log := d.opts.Log.With("profile", d.opts.Profile, "webhook", ep.id)
	cur := ep.start
	due := false // a backoff ran out: retry whatever the clock says
	for {
		var timer *time.Timer
		switch wait := time.Duration(cur.NextAttemptMs-d.nowMs()) * time.Millisecond; {
		case cur.DeadAtMs != 0:
			// Dead letter: only a redeliver resumes.
		case wait > 0 && !due:
			timer = time.NewTimer(wait)
		default:
			var again bool
			cur, again = d.deliver(ctx, ep, cur, log)
			due = false
			if ctx.Err() != nil {
				return
			}
			if again || cur.NextAttemptMs != 0 || cur.DeadAtMs != 0 {
				continue
			}
			// Caught up: wait for an event.
		}
		var expired <-chan time.Time
		if timer != nil {
			expired = timer.C
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-expired:
			due = true
		case <-ep.poke:
			if fresh, err := d.opts.Store.Webhook(ctx, ep.id); err == nil {
				cur = fresh
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// deliver sends the events after the cursor, in order, until one fails or
// none is left; again is true when there may be more to send at once.
func (d *Dispatcher) deliver(ctx context.Context, ep *endpoint, cur db.WebhookCursor, log *slog.Logger) (next db.WebhookCursor, again bool) {
	events, err := d.opts.Store.EventsAfter(ctx, cur.Cursor, batch)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("read outbox", "err", err)
			cur.NextAttemptMs = d.nowMs() + time.Second.Milliseconds()
		}
		return cur, false
	}
	if len(events) == 0 && cur.NextAttemptMs != 0 {
		// The event it was retrying is gone (retention pruned it; the
		// sweeper said so) and none follows: the next event is tried
		// when it comes. The endpoint is still failing: its attempts,
		// backoff and retry window go on with that event, so one that
		// is never reached is dead-lettered all the same.
		cur.NextAttemptMs = 0
		next, err := d.save(ctx, ep, cur, log)
		return next, err != nil
	}
	skipped := false
	for _, e := range events {
		if !ep.cfg.Wants(e.Name) {
			cur.Cursor, skipped = e.Seq, true
			continue
		}
		err := d.attempt(ctx, ep, e)
		if ctx.Err() != nil {
			return cur, false // shutting down: the event is sent again after restart
		}
		if err == nil {
			ep.delivered.Add(1)
			if cur.Attempts > 0 {
				log.Info("webhook delivering again", "seq", e.Seq, "failedAttempts", cur.Attempts,
					"failingFor", (time.Duration(d.nowMs()-cur.FailingSinceMs) * time.Millisecond).Round(time.Second))
			}
			cur = db.WebhookCursor{ID: cur.ID, Generation: cur.Generation, Cursor: e.Seq}
			if cur, err = d.save(ctx, ep, cur, log); err != nil {
				return cur, true
			}
			skipped = false
			continue
		}
		ep.failures.Add(1)
		now := d.nowMs()
		if cur.Attempts == 0 {
			cur.FailingSinceMs = now
		}
		cur.Attempts++
		cur.LastError = err.Error()
		if time.Duration(now-cur.FailingSinceMs)*time.Millisecond >= d.opts.RetryWindow {
			cur.DeadAtMs, cur.NextAttemptMs = now, 0
			log.Error("webhook dead-lettered: event not delivered within the retry window; redeliver resumes",
				"seq", e.Seq, "attempts", cur.Attempts, "err", err)
		} else {
			wait := d.opts.Backoff(cur.Attempts)
			cur.NextAttemptMs = now + wait.Milliseconds()
			log.Warn("webhook delivery failed; will retry", "seq", e.Seq, "attempt", cur.Attempts, "retryIn", wait.Round(time.Second), "err", err)
		}
		cur, err = d.save(ctx, ep, cur, log)
		return cur, err != nil // moved by a redeliver: deliver from there
	}
	if skipped {
		cur, _ = d.save(ctx, ep, cur, log)
	}
	return cur, len(events) == batch
}

// save stores the cursor. When a redeliver moved it meanwhile, the
// redeliver wins: the stored cursor is returned with ErrWebhookMoved.
// Other failures keep the cursor in memory (at worst events are sent
// again after a restart).
func (d *Dispatcher) save(ctx context.Context, ep *endpoint, cur db.WebhookCursor, log *slog.Logger) (db.WebhookCursor, error) {
	err := d.opts.Store.SaveWebhook(ctx, cur)
	if errors.Is(err, db.ErrWebhookMoved) {
		fresh, rerr := d.opts.Store.Webhook(ctx, ep.id)
		if rerr != nil { // try again in a second rather than resend at once
			fresh = cur
			fresh.NextAttemptMs = d.nowMs() + time.Second.Milliseconds()
		}
		return fresh, err
	}
	if err != nil && ctx.Err() == nil {
		log.Error("save webhook cursor", "err", err)
	}
	return cur, nil
}

// attempt makes one signed delivery; any 2xx answer is a success.
func (d *Dispatcher) attempt(ctx context.Context, ep *endpoint, e db.Event) error {
	body := Body(d.opts.Profile, e)
	id := MessageID(e)
	ts := d.opts.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pairgate-webhook")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(ep.key, id, ts, body))
	resp, err := ep.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() && ctx.Err() == nil {
				return fmt.Errorf("no answer within %s (the endpoint's timeout)", ep.client.Timeout)
			}
			err = ue.Err // without the URL, which may hold a secret
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

func (d *Dispatcher) nowMs() int64 { return d.opts.Now().UnixMilli() }

// State is one endpoint as the API and metrics show it.
type State struct {
	db.WebhookCursor
	URL string `json:"url"`
	// Events is the filter; absent: every event.
	Events []string `json:"events,omitempty"`
	// State is delivering, retrying or dead.
	State string `json:"state"`
	// LastSeq is the newest event's seq, pruned or not.
	LastSeq int64 `json:"lastSeq"`
	// Lag is how many events the endpoint is behind (filtered ones
	// included): counted, not LastSeq-Cursor, which a gap in the seqs (a
	// restart after a crash, a restore) makes a thousand or more.
	Lag int64 `json:"lag"`
	// Delivered and Failures count attempts since the server started.
	Delivered int64 `json:"delivered"`
	Failures  int64 `json:"failures"`
	// Undelivered counts the events retention pruned before the endpoint
	// delivered them, since the server started: they are never sent.
	Undelivered int64 `json:"undelivered"`
}

// States reads every endpoint's state, in configuration order.
func (d *Dispatcher) States(ctx context.Context) ([]State, error) {
	last, err := d.opts.Store.IssuedSeq(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]State, 0, len(d.endpoints))
	for _, ep := range d.endpoints {
		cur, err := d.opts.Store.Webhook(ctx, ep.id)
		if err != nil {
			return nil, err
		}
		st, err := d.state(ctx, ep, cur, last)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (d *Dispatcher) state(ctx context.Context, ep *endpoint, cur db.WebhookCursor, last int64) (State, error) {
	lag, err := d.opts.Store.CountEventsAfter(ctx, cur.Cursor)
	s := State{WebhookCursor: cur, URL: ep.cfg.RedactedURL(), Events: ep.cfg.Events,
		LastSeq: last, Lag: lag, Delivered: ep.delivered.Load(), Failures: ep.failures.Load(),
		Undelivered: d.opts.Store.Undelivered(ep.id)}
	s.State = stateOf(cur)
	return s, err
}

// stateOf names a cursor's state: delivering, retrying or dead.
func stateOf(cur db.WebhookCursor) string {
	switch {
	case cur.DeadAtMs != 0:
		return "dead"
	case cur.Attempts > 0:
		return "retrying"
	}
	return "delivering"
}

// Health is an endpoint's delivery state without its counts (no lag
// count: /readyz reads it, unauthenticated, on every probe).
type Health struct {
	State          string `json:"state"`
	Attempts       int    `json:"attempts,omitempty"`
	FailingSinceMs int64  `json:"failingSince,omitempty"`
}

// Health reads each endpoint's state by id.
func (d *Dispatcher) Health(ctx context.Context) (map[string]Health, error) {
	out := make(map[string]Health, len(d.endpoints))
	for _, ep := range d.endpoints {
		cur, err := d.opts.Store.Webhook(ctx, ep.id)
		if err != nil {
			return nil, err
		}
		h := Health{State: stateOf(cur)}
		if h.State != "delivering" {
			h.Attempts, h.FailingSinceMs = cur.Attempts, cur.FailingSinceMs
		}
		out[ep.id] = h
	}
	return out, nil
}

// Redeliver restarts an endpoint's delivery at event from (0: the event
// after its cursor), clearing its failures or dead letter, and wakes it.
func (d *Dispatcher) Redeliver(ctx context.Context, id string, from int64) (State, error) {
	for _, ep := range d.endpoints {
		if ep.id != id {
			continue
		}
		cur, err := d.opts.Store.RedeliverWebhook(ctx, id, from)
		if err != nil {
			return State{}, err
		}
		select {
		case ep.poke <- struct{}{}:
		default:
		}
		last, err := d.opts.Store.IssuedSeq(ctx)
		if err != nil {
			return State{}, err
		}
		return d.state(ctx, ep, cur, last)
	}
	return State{}, &db.Error{Code: db.CodeNotFound, Message: fmt.Sprintf("unknown webhook %q of profile %q", id, d.opts.Profile)}
}

package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/webhook"
)

// hookSecret is a Standard Webhooks secret: whsec_ + base64 of 32 bytes.
const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw6iUOYbVjMfo="

// verifyStandardWebhook checks a delivery as the Standard Webhooks
// specification tells receivers to, written from the specification and
// not from pairgate's signer: the key is the base64 part of the secret;
// the signed content is "id.timestamp.body"; the signature header is a
// space-separated list of "v1,<base64 HMAC-SHA256>", one of which must
// match (compared in constant time); the timestamp must be within five
// minutes of now.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", ts)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %v away from now", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	msg    webhook.Message
	status int
}

// receiver is a real webhook endpoint on 127.0.0.1. answer decides the
// status of the n-th request (0-based); it may block.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	answer func(n int, d delivery) int
	// nows is the times "now" may be for a delivery arriving: the wall
	// clock, or every time a test pinned the server's clock to (a
	// delivery signed before a re-pin may arrive after it).
	nows func() []time.Time

	mu  sync.Mutex
	got []delivery
}

func newReceiver(t testing.TB, answer func(n int, d delivery) int) *receiver {
	r := &receiver{t: t, answer: answer, nows: func() []time.Time { return []time.Time{time.Now()} }}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{header: req.Header.Clone(), body: body}
	r.mu.Lock()
	nows := r.nows()
	r.mu.Unlock()
	var err error
	for _, now := range nows {
		if err = verifyStandardWebhook(hookSecret, req.Header, body, now); err == nil {
			break
		}
	}
	if err != nil {
		r.t.Errorf("delivery %s does not verify: %v", req.Header.Get("webhook-id"), err)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d.msg); err != nil {
		r.t.Errorf("body %s: %v", body, err)
	}
	r.mu.Lock()
	n := len(r.got)
	r.got = append(r.got, d)
	r.mu.Unlock()
	d.status = r.answer(n, d)
	r.mu.Lock()
	r.got[n].status = d.status
	r.mu.Unlock()
	w.WriteHeader(d.status)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// succeeded is the seqs of the deliveries answered 2xx, in arrival order.
func (r *receiver) succeeded() []int64 {
	var out []int64
	for _, d := range r.deliveries() {
		if d.status/100 == 2 {
			out = append(out, d.msg.Seq)
		}
	}
	return out
}

func ok(int, delivery) int { return http.StatusNoContent }

func withWebhooks(policy WebhookPolicy, hooks ...config.Webhook) func(*serverSetup) {
	return func(s *serverSetup) {
		s.cfg.Profiles[0].Webhooks = hooks
		s.opts.Webhooks = policy
	}
}

func hookTo(r *receiver, events ...string) config.Webhook {
	return config.Webhook{URL: r.srv.URL + "/hook", Secret: hookSecret, Events: events, Timeout: time.Minute}
}

// fast retries at once: the tests control failures, not time.
var fast = WebhookPolicy{Backoff: func(int) time.Duration { return time.Millisecond }}

// eventually polls cond until it holds, failing after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// caughtUp waits until endpoint i of the default profile has its cursor at seq.
func caughtUp(t *testing.T, ts *testServer, i int, seq int64) {
	t.Helper()
	var list struct{ Webhooks []webhook.State }
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts.mustAPI(t, 200, "GET", base+"/webhooks", "", &list)
		if list.Webhooks[i].Cursor == seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook %d never delivered up to %d: %+v\n%s", i, seq, list.Webhooks[i], ts.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pairOne requests and approves a node over REST and returns its token.
func (ts *testServer) pairOne(t *testing.T, node string) string {
	t.Helper()
	var req db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"`+node+`"}`, &req)
	var a db.Approval
	ts.mustAPI(t, 200, "POST", base+"/requests/"+req.Request.RequestID+"/approve", "", &a)
	return a.Node.Token
}

func seqs(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestWebhookDeliversSignedEventsInOrder(t *testing.T) {
	all := newReceiver(t, ok)
	requests := newReceiver(t, ok)
	ts := startServer(t, withWebhooks(fast, hookTo(all), hookTo(requests, db.EventRequested)))
	var tokens []string
	for i := range 3 {
		tokens = append(tokens, ts.pairOne(t, fmt.Sprintf("node-%d", i)))
	}
	ts.mustAPI(t, 200, "PATCH", base+"/nodes/node-0", `{"displayName":"Den"}`, nil)
	ts.mustAPI(t, 204, "DELETE", base+"/nodes/node-1", "", nil)
	last, _ := ts.byName["default"].Store.LastSeq(t.Context())
	caughtUp(t, ts, 0, last)
	caughtUp(t, ts, 1, last)

	events, _ := ts.byName["default"].Store.EventsAfter(t.Context(), 0, 100)
	got := all.deliveries()
	for i, e := range events {
		d := got[i]
		want := webhook.Message{Type: e.Name, Profile: "default", Seq: e.Seq, TS: e.TS, Data: e.Payload}
		if d.header.Get("webhook-id") != strconv.FormatInt(e.Seq, 10) || !jsonEqual(d.msg, want) {
			t.Errorf("delivery %d: id %s body %s, want %+v", i, d.header.Get("webhook-id"), d.body, want)
		}
		for _, token := range tokens {
			if strings.Contains(string(d.body), token) {
				t.Fatalf("a node token is in a webhook body: %s", d.body)
			}
		}
		// The verifier can fail: a tampered body or a wrong secret does not verify.
		tampered := strings.Replace(string(d.body), `"profile":"default"`, `"profile":"work"`, 1)
		if verifyStandardWebhook(hookSecret, d.header, []byte(tampered), time.Now()) == nil ||
			verifyStandardWebhook("whsec_"+base64.StdEncoding.EncodeToString(make([]byte, 32)), d.header, d.body, time.Now()) == nil {
			t.Fatalf("a tampered delivery verifies: %s", tampered)
		}
	}
	for _, d := range requests.deliveries() {
		if d.msg.Type != db.EventRequested {
			t.Errorf("the requests-only endpoint got %s", d.msg.Type)
		}
	}
	var list struct{ Webhooks []webhook.State }
	ts.mustAPI(t, 200, "GET", base+"/webhooks", "", &list)
	if len(list.Webhooks) != 2 || list.Webhooks[0].Cursor != last || list.Webhooks[0].Lag != 0 || list.Webhooks[0].State != "delivering" ||
		list.Webhooks[0].Delivered != last || list.Webhooks[0].URL != "http://"+all.srv.Listener.Addr().String()+"/…" {
		t.Fatalf("webhooks %+v", list.Webhooks)
	}
	metrics := string(ts.api(t, "GET", "/metrics", "", "").body)
	want := fmt.Sprintf(`pairgate_webhook_deliveries_total{profile="default",webhook="%s"} %d`, list.Webhooks[0].ID, last)
	if !strings.Contains(metrics, want) || !strings.Contains(metrics, `pairgate_webhook_dead{profile="default",webhook="`+list.Webhooks[1].ID+`"} 0`) {
		t.Fatalf("metrics lack %s", want)
	}
	var none struct{ Webhooks []webhook.State }
	r := ts.api(t, "GET", "/api/v1/profiles/work/webhooks", "work-token", "")
	if r.decode(t, &none); r.status != 200 || none.Webhooks == nil || len(none.Webhooks) != 0 {
		t.Fatalf("a profile without webhooks: %d %s", r.status, r.body)
	}
}

// A receiver that fails five times then recovers gets every event once
// more, in order: the failing one with the same webhook-id each time.
func TestWebhookRetriesUntilTheReceiverRecovers(t *testing.T) {
	rcv := newReceiver(t, func(n int, _ delivery) int {
		if n < 5 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	ts := startServer(t, withWebhooks(fast, hookTo(rcv)))
	for i := range 3 {
		ts.pairOne(t, fmt.Sprintf("n%d", i))
	}
	caughtUp(t, ts, 0, 6)
	if got := rcv.succeeded(); !slices.Equal(got, seqs(1, 6)) {
		t.Fatalf("delivered %v, want each of 1…6 once, in order", got)
	}
	got := rcv.deliveries()
	for _, d := range got[:6] {
		if d.header.Get("webhook-id") != "1" {
			t.Fatalf("retries of event 1 came with webhook-id %s", d.header.Get("webhook-id"))
		}
	}
	var list struct{ Webhooks []webhook.State }
	ts.mustAPI(t, 200, "GET", base+"/webhooks", "", &list)
	if w := list.Webhooks[0]; w.Failures != 5 || w.Attempts != 0 || w.State != "delivering" || w.Cursor != 6 {
		t.Fatalf("state %+v", w)
	}
}

// A receiver that hangs holds up its own deliveries only: approvals and
// another endpoint go on.
func TestWebhookHungReceiverDelaysNothingElse(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	hung := newReceiver(t, func(int, delivery) int {
		entered <- struct{}{}
		<-release
		return http.StatusOK
	})
	healthy := newReceiver(t, ok)
	ts := startServer(t, withWebhooks(fast, hookTo(hung), hookTo(healthy)))
	t.Cleanup(func() { close(release) }) // before the receivers close, after the server stops
	var first db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"first"}`, &first)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first event never reached the hanging receiver")
	}
	// The receiver now holds event 1 and answers nothing.
	for i := range 5 {
		ts.pairOne(t, fmt.Sprintf("n%d", i))
	}
	ts.mustAPI(t, 200, "POST", base+"/requests/"+first.Request.RequestID+"/approve", "", nil)
	caughtUp(t, ts, 1, 12)
	if n := len(hung.deliveries()); n != 1 || len(entered) != 0 {
		t.Fatalf("the hanging receiver got %d requests", n)
	}
	var list struct{ Webhooks []webhook.State }
	ts.mustAPI(t, 200, "GET", base+"/webhooks", "", &list)
	if list.Webhooks[0].Cursor != 0 || list.Webhooks[0].Lag != 12 {
		t.Fatalf("hung endpoint %+v", list.Webhooks[0])
	}
}

// After the retry window the endpoint is dead-lettered: delivery stops,
// the API and metrics show it, and redeliver resumes it.
func TestWebhookDeadLetterAndRedeliver(t *testing.T) {
	var mu sync.Mutex
	up := false
	rcv := newReceiver(t, func(int, delivery) int {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	ts := startServer(t, withWebhooks(fast, hookTo(rcv)))
	// The server's time is pinned below, three times; a delivery signed
	// at one pin may reach the receiver after the next.
	var pins []time.Time
	pin := func(at time.Time) {
		rcv.mu.Lock()
		pins = append(pins, at)
		rcv.nows = func() []time.Time { return slices.Clone(pins) }
		rcv.mu.Unlock()
		ts.clock.Pin(at)
	}
	start := time.Now()
	pin(start)
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"a"}`, nil)
	state := func() webhook.State {
		var list struct{ Webhooks []webhook.State }
		ts.mustAPI(t, 200, "GET", base+"/webhooks", "", &list)
		return list.Webhooks[0]
	}
	eventually(t, "retrying", func() bool { s := state(); return s.State == "retrying" && s.Attempts >= 2 })
	if s := state(); s.FailingSinceMs != start.UnixMilli() || s.LastError != "HTTP 500" {
		t.Fatalf("retrying state %+v", s)
	}
	pin(start.Add(webhook.DefaultRetryWindow - time.Second))
	tried := state().Attempts
	eventually(t, "retried late in the window", func() bool { return state().Attempts > tried+1 })
	if s := state(); s.State == "dead" {
		t.Fatalf("dead before the window ran out: %+v", s)
	}
	// An operator sees it failing long before it is dead: /metrics says
	// for how long, /readyz (still ready) which one and since when, with
	// neither its URL nor its error (it asks for no token).
	failing := fmt.Sprintf(`pairgate_webhook_failing_seconds{profile="default",webhook="%s"} %d`, state().ID, int((webhook.DefaultRetryWindow - time.Second).Seconds()))
	if metrics := string(ts.api(t, "GET", "/metrics", "", "").body); !strings.Contains(metrics, failing) {
		t.Fatalf("metrics lack %s", failing)
	}
	ready := ts.api(t, "GET", "/readyz", "", "")
	var r readiness
	ready.decode(t, &r)
	if h := r.Webhooks["default"][state().ID]; ready.status != 200 || h.State != "retrying" || h.FailingSinceMs != start.UnixMilli() || h.Attempts < 2 ||
		strings.Contains(string(ready.body), "HTTP 500") || strings.Contains(string(ready.body), "127.0.0.1") {
		t.Fatalf("/readyz of a failing webhook = %d %s", ready.status, ready.body)
	}
	pin(start.Add(webhook.DefaultRetryWindow))
	eventually(t, "dead-lettered", func() bool { return state().State == "dead" })
	attempts := len(rcv.deliveries())
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"b"}`, nil)
	if s := state(); s.Cursor != 0 || s.DeadAtMs == 0 || s.Lag < 2 {
		t.Fatalf("dead state %+v", s)
	}
	metrics := string(ts.api(t, "GET", "/metrics", "", "").body)
	if !strings.Contains(metrics, `pairgate_webhook_dead{profile="default",webhook="`+state().ID+`"} 1`) {
		t.Fatal("metrics do not show the dead letter")
	}
	if n := len(rcv.deliveries()); n != attempts {
		t.Fatalf("a dead endpoint was tried again: %d attempts, then %d", attempts, n)
	}

	for _, bad := range []struct {
		path   string
		status int
	}{{"/webhooks/wh_nope/redeliver", 404}, {"/webhooks/" + state().ID + "/redeliver?from=x", 400}, {"/webhooks/" + state().ID + "/redeliver?from=999", 400}} {
		if r := ts.api(t, "POST", base+bad.path, testToken, ""); r.status != bad.status {
			t.Fatalf("POST %s = %d %s", bad.path, r.status, r.body)
		}
	}
	if r := ts.api(t, "POST", "/api/v1/profiles/work/webhooks/x/redeliver", "work-token", ""); r.status != 404 {
		t.Fatalf("redeliver on a profile without webhooks = %d", r.status)
	}
	mu.Lock()
	up = true
	mu.Unlock()
	var resumed webhook.State
	ts.mustAPI(t, 200, "POST", base+"/webhooks/"+state().ID+"/redeliver", "", &resumed)
	if resumed.State != "delivering" || resumed.Cursor != 0 {
		t.Fatalf("redeliver answered %+v", resumed)
	}
	if !regexp.MustCompile(`msg="webhook redelivery requested" profile=default webhook=\S+ from=0 resumesWith=1 lag=\d+ remote=127.0.0.1 clearedAttempts=[1-9]\d* wasDead=true`).MatchString(ts.log.String()) {
		t.Fatalf("the redelivery of a dead endpoint is not logged:\n%s", ts.log)
	}
	last, _ := ts.byName["default"].Store.LastSeq(t.Context())
	eventually(t, "resumed and caught up", func() bool { s := state(); return s.Cursor == last && s.State == "delivering" })
	if ready := ts.api(t, "GET", "/readyz", "", ""); strings.Contains(string(ready.body), `"webhooks"`) {
		t.Fatalf("/readyz of a delivering webhook = %s", ready.body)
	}
	// Redeliver from an earlier event replays it, with its own webhook-id.
	ts.mustAPI(t, 200, "POST", base+"/webhooks/"+state().ID+"/redeliver?from=1", "", nil)
	eventually(t, "replayed from 1", func() bool { return len(rcv.succeeded()) == 2*int(last) })
	if got := rcv.succeeded(); !slices.Equal(got, append(seqs(1, last), seqs(1, last)...)) {
		t.Fatalf("delivered %v", got)
	}
}

// Every event the store writes can be asked for in the configuration.
func TestWebhookEventNamesMatchTheStore(t *testing.T) {
	store := []string{db.EventRequested, db.EventResolved, db.EventRenamed, db.EventConnected, db.EventImported}
	if !slices.Equal(store, config.WebhookEvents) {
		t.Fatalf("config.WebhookEvents %v, the store writes %v", config.WebhookEvents, store)
	}
}

// The receiver of docs/webhooks.md in short: it approves a node through
// the REST API when its request arrives, from inside the delivery.
func TestWebhookReceiverApprovesThroughREST(t *testing.T) {
	var api string
	var apiMu sync.Mutex
	rcv := newReceiver(t, func(_ int, d delivery) int {
		var data struct{ RequestID, NodeID string }
		json.Unmarshal(d.msg.Data, &data)
		if d.msg.Type != db.EventRequested || !strings.HasPrefix(data.NodeID, "lab-") {
			return http.StatusNoContent
		}
		apiMu.Lock()
		url := api + "/api/v1/profiles/" + d.msg.Profile + "/requests/" + data.RequestID + "/approve"
		apiMu.Unlock()
		req, _ := http.NewRequest("POST", url, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return http.StatusBadGateway
		}
		resp.Body.Close()
		return http.StatusNoContent
	})
	ts := startServer(t, withWebhooks(fast, hookTo(rcv, db.EventRequested)))
	apiMu.Lock()
	api = ts.url
	apiMu.Unlock()
	var lab, other db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"lab-pi"}`, &lab)
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"kitchen-ipad"}`, &other)
	caughtUp(t, ts, 0, 3) // requested, requested, and the approval's resolution
	var st struct{ Status string }
	ts.mustAPI(t, 200, "GET", base+"/requests/"+lab.Request.RequestID, "", &st)
	if st.Status != "approved" {
		t.Fatalf("lab-pi is %s", st.Status)
	}
	ts.mustAPI(t, 200, "GET", base+"/requests/"+other.Request.RequestID, "", &st)
	if st.Status != "pending" {
		t.Fatalf("kitchen-ipad is %s", st.Status)
	}
}

func TestWebhookPlainHTTPElsewhereIsWarned(t *testing.T) {
	hook := config.Webhook{URL: "http://192.0.2.1:9/hook", Secret: hookSecret, Timeout: 100 * time.Millisecond}
	ts := startServer(t, withWebhooks(WebhookPolicy{Backoff: func(int) time.Duration { return time.Hour }}, hook))
	if !strings.Contains(ts.log.String(), "webhook is plain http to a host other than loopback") || !strings.Contains(ts.log.String(), "url=http://192.0.2.1:9/…") {
		t.Fatalf("no warning in the log:\n%s", ts.log)
	}
}

// The receiver in docs/webhooks.md compiles and passes go vet.
func TestWebhookDocReceiverVets(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH")
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "webhooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```go\n")
	code, _, found := strings.Cut(rest, "```")
	if !found || !strings.Contains(code, "package main") {
		t.Fatal("docs/webhooks.md has no Go receiver")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o600)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module receiver\n\ngo 1.26\n"), 0o600)
	cmd := exec.Command(goTool, "vet", ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet of the doc's receiver: %v\n%s", err, out)
	}
}

// BenchmarkWebhookDelivery measures one endpoint catching up on a backlog:
// signed POSTs to a verifying receiver on loopback, one cursor write each.
func BenchmarkWebhookDelivery(b *testing.B) {
	var up atomic.Bool
	rcv := newReceiver(b, func(int, delivery) int {
		if up.Load() {
			return http.StatusNoContent
		}
		return http.StatusServiceUnavailable
	})
	hook := hookTo(rcv)
	ts := startServer(b, withWebhooks(WebhookPolicy{Backoff: func(int) time.Duration { return time.Hour }}, hook),
		func(s *serverSetup) { s.cfg.Profiles[0].MaxPending = 1_000_000 })
	st := ts.byName["default"].Store
	for i := range b.N {
		if _, err := st.Request(b.Context(), db.RequestInput{NodeID: fmt.Sprintf("n%d", i)}, db.Origin{Actor: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	up.Store(true)
	b.ResetTimer()
	ts.mustAPI(b, 200, "POST", base+"/webhooks/"+hook.ID()+"/redeliver", "", nil)
	for {
		cur, err := st.Webhook(b.Context(), hook.ID())
		if err != nil {
			b.Fatal(err)
		}
		if cur.Cursor == int64(b.N) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// A receiver slower than the endpoint's timeout: the error says the
// timeout and the key that sets it.
func TestWebhookTimeoutIsNamed(t *testing.T) {
	release := make(chan struct{})
	slow := newReceiver(t, func(int, delivery) int {
		<-release
		return http.StatusOK
	})
	hook := hookTo(slow)
	hook.Timeout = 100 * time.Millisecond
	ts := startServer(t, withWebhooks(WebhookPolicy{Backoff: func(int) time.Duration { return time.Hour }}, hook))
	t.Cleanup(func() { close(release) })
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"slow"}`, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list struct{ Webhooks []webhook.State }
		ts.mustAPI(t, 200, "GET", base+"/webhooks", "", &list)
		if len(list.Webhooks) == 1 && list.Webhooks[0].LastError != "" {
			if want := "no answer within 100ms (the endpoint's timeout)"; list.Webhooks[0].LastError != want {
				t.Fatalf("last error %q, want %q", list.Webhooks[0].LastError, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failure recorded: %+v", list.Webhooks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An endpoint retrying an event that retention prunes goes on with the
// events kept: it neither spins on the missing event nor forgets that it
// is failing, and what it lost is logged and counted.
func TestWebhookGoesOnWhenItsRetriedEventIsPruned(t *testing.T) {
	var up atomic.Bool
	rcv := newReceiver(t, func(int, delivery) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	retry := WebhookPolicy{Backoff: func(int) time.Duration { return 20 * time.Millisecond }}
	ts, now := startPruning(t, rcv, retry)
	ts.pairOne(t, "lost") // events 1 and 2
	waitHook(t, ts, "the endpoint retrying", func(w webhook.State) bool { return w.Attempts > 0 })
	ts.clock.Pin(now.Add(time.Hour + time.Second)) // both events past retention
	state := waitHook(t, ts, "the endpoint past its pruned events", func(w webhook.State) bool {
		return w.Undelivered == 2 && w.NextAttemptMs == 0
	})
	if state.State != "retrying" || state.Attempts == 0 || state.LastError != "HTTP 503" || state.Cursor != 0 {
		t.Fatalf("an endpoint that never delivered shows %+v; want it still retrying", state)
	}
	if !strings.Contains(ts.log.String(), "webhook fell behind retention.events") ||
		!strings.Contains(ts.log.String(), "webhook="+state.ID+" events=2") {
		t.Fatalf("the loss is not logged:\n%s", ts.log)
	}
	metrics := string(ts.api(t, "GET", "/metrics", "", "").body)
	if want := `pairgate_webhook_undelivered_pruned_total{profile="default",webhook="` + state.ID + `"} 2`; !strings.Contains(metrics, want) {
		t.Fatalf("metrics lack %s", want)
	}
	time.Sleep(100 * time.Millisecond) // five backoffs: with nothing to send, nothing is tried
	if idle := hookState(t, ts); idle.Failures != state.Failures {
		t.Fatalf("with nothing to send the endpoint made %d more attempts", idle.Failures-state.Failures)
	}
	up.Store(true)
	ts.pairOne(t, "next")
	caughtUp(t, ts, 0, 4)
	if got := rcv.succeeded(); !slices.Equal(got, []int64{3, 4}) {
		t.Fatalf("delivered %v, want 3 and 4", got)
	}
	if !strings.Contains(ts.log.String(), `msg="webhook delivering again" profile=default webhook=`+state.ID+" seq=3") {
		t.Fatalf("the recovery is not logged:\n%s", ts.log)
	}
	// A replay from a pruned event resumes with the first one kept, and
	// the answer and the log say so.
	var again webhook.State
	ts.mustAPI(t, 200, "POST", base+"/webhooks/"+state.ID+"/redeliver?from=1", "", &again)
	if again.Cursor != 2 || again.Lag != 2 ||
		!strings.Contains(ts.log.String(), `msg="webhook redelivery requested" profile=default webhook=`+state.ID+" from=1 resumesWith=3 lag=2 remote=127.0.0.1 clearedAttempts=0 wasDead=false") {
		t.Fatalf("redeliver from 1: %+v\n%s", again, ts.log)
	}
	caughtUp(t, ts, 0, 4)
	ts.stop() // a worker spinning on the pruned event would never stop
}

// An endpoint never reached is dead-lettered when its retry window ends,
// even though retention pruned the events it failed on meanwhile.
func TestWebhookNeverReachedIsDeadLetteredAcrossPruning(t *testing.T) {
	rcv := newReceiver(t, func(int, delivery) int { return http.StatusServiceUnavailable })
	policy := WebhookPolicy{Backoff: func(int) time.Duration { return 20 * time.Millisecond }, RetryWindow: 2 * time.Hour}
	ts, now := startPruning(t, rcv, policy)
	ts.pairOne(t, "first") // events 1 and 2
	waitHook(t, ts, "the endpoint retrying", func(w webhook.State) bool { return w.Attempts > 0 })
	ts.clock.Pin(now.Add(time.Hour + time.Second))
	waitHook(t, ts, "events 1 and 2 pruned", func(w webhook.State) bool { return w.Undelivered == 2 })
	ts.clock.Pin(now.Add(2*time.Hour + 2*time.Second)) // the window since the first failure is over
	ts.pairOne(t, "second")
	waitHook(t, ts, "the endpoint dead-lettered", func(w webhook.State) bool { return w.State == "dead" })
}

// startPruning serves the default profile with one endpoint to rcv, an
// hour's event retention and a sweep every 10 ms, on a pinned clock (the
// receiver checks signatures on it).
func startPruning(t *testing.T, rcv *receiver, policy WebhookPolicy) (*testServer, time.Time) {
	t.Helper()
	ts := startServer(t, withWebhooks(policy, hookTo(rcv)), func(s *serverSetup) {
		s.cfg.Profiles[0].EventRetention = time.Hour
		s.cfg.Profiles[0].SweepInterval = 10 * time.Millisecond
	})
	rcv.mu.Lock()
	rcv.nows = func() []time.Time { return []time.Time{ts.clock.Now()} }
	rcv.mu.Unlock()
	now := time.Now()
	ts.clock.Pin(now)
	return ts, now
}

// hookState reads the default profile's first endpoint.
func hookState(t *testing.T, ts *testServer) webhook.State {
	t.Helper()
	var list struct{ Webhooks []webhook.State }
	ts.mustAPI(t, 200, "GET", base+"/webhooks", "", &list)
	return list.Webhooks[0]
}

// waitHook waits until the default profile's first endpoint satisfies ok.
func waitHook(t *testing.T, ts *testServer, what string, ok func(webhook.State) bool) webhook.State {
	t.Helper()
	var w webhook.State
	eventually(t, what, func() bool {
		w = hookState(t, ts)
		return ok(w)
	})
	return w
}

// An endpoint taken out of the configuration is forgotten at start (and
// said so): its pruned events are not counted as lost, and added back it
// starts at the newest event. Configured ones keep their cursor.
func TestWebhookTakenOutIsForgotten(t *testing.T) {
	rcv := newReceiver(t, ok)
	kept := hookTo(rcv)
	fresh := hookTo(rcv)
	fresh.URL += "/work"
	ts := startServer(t, withWebhooks(fast, kept), func(s *serverSetup) {
		s.cfg.Profiles[1].Webhooks = []config.Webhook{fresh}
		p, err := OpenProfile(t.Context(), s.cfg.Profiles[0], slog.New(slog.DiscardHandler), time.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for _, id := range []string{"wh_0123456789", kept.ID()} {
			if _, _, err := p.Store.OpenWebhook(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
	})
	st := ts.byName["default"].Store
	if _, err := st.Webhook(t.Context(), "wh_0123456789"); err == nil {
		t.Fatal("the endpoint taken out of the configuration is still kept")
	}
	if _, err := st.Webhook(t.Context(), kept.ID()); err != nil {
		t.Fatalf("the configured endpoint's cursor: %v", err)
	}
	if !strings.Contains(ts.log.String(), `msg="webhook taken out of the configuration: its delivery state is forgotten; added back, it starts at the newest event" profile=default webhook=wh_0123456789 cursor=0`) {
		t.Fatalf("not said:\n%s", ts.log)
	}
	// The kept endpoint is not new; the work profile's is.
	if n := strings.Count(ts.log.String(), `msg="new webhook: it gets the events after the newest one`); n != 1 ||
		!strings.Contains(ts.log.String(), "profile=work webhook="+fresh.ID()+" url=http://"+rcv.srv.Listener.Addr().String()+"/… after=0") {
		t.Fatalf("%d new webhooks said, want the work profile's:\n%s", n, ts.log)
	}
}

// Command pairgate-load drives a running pairgate and prints throughput,
// latency percentiles and errors. Over REST it sends at a fixed rate with
// vegeta's library (open-loop: requests leave at the rate whether or not
// earlier ones have answered, so latency is honest); over the WebSocket
// protocol (ws.go) N connections call as fast as they are answered.
//
//	pairgate-load --mode verify  --rate 2000 --duration 10s --token T
//	pairgate-load --mode approve --rate 300  --duration 3s  --token T
//	pairgate-load --mode ws-cycle  --clients 8 --duration 10s --token T
//	pairgate-load --mode ws-verify --clients 4 --cycle-clients 4 --duration 10s --token T
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, flag.ErrHelp): // the help was asked for, and printed
	case err != nil:
		fmt.Fprintln(os.Stderr, "pairgate-load:", err)
		os.Exit(1)
	}
}

type options struct {
	base, profile, token, mode string
	rate                       int
	duration                   time.Duration
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("pairgate-load", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.base, "url", "http://127.0.0.1:18789", "server `URL`")
	fs.StringVar(&o.profile, "profile", "default", "profile `name`")
	fs.StringVar(&o.token, "token", os.Getenv("OPENCLAW_GATEWAY_TOKEN"), "operator `token` of the profile (default $OPENCLAW_GATEWAY_TOKEN)")
	fs.StringVar(&o.mode, "mode", "verify", "what to send: verify (POST …/verify), approve (POST …/requests/{id}/approve), ws-cycle (request → approve → verify over the WebSocket) or ws-verify (node.pair.verify)")
	var wo wsOptions
	fs.IntVar(&wo.clients, "clients", 1, "ws modes: concurrent WebSocket connections")
	fs.IntVar(&wo.cycleClients, "cycle-clients", 0, "ws-verify: more connections running cycles meanwhile")
	fs.IntVar(&wo.nodes, "nodes", 100, "ws-verify: paired nodes to verify, round robin")
	fs.IntVar(&wo.count, "count", 0, "ws modes: stop after this many cycles or verifies (0: run for --duration)")
	fs.IntVar(&o.rate, "rate", 1000, "requests per second")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long to send")
	allowRemote := fs.Bool("allow-remote", false, "allow a server that is not on loopback")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(o.base)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--url %q is not a URL", o.base)
	}
	if ip := net.ParseIP(u.Hostname()); !*allowRemote && u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address; pass --allow-remote to load another host", u.Hostname())
	}
	if o.token == "" {
		return errors.New("--token (or $OPENCLAW_GATEWAY_TOKEN) is required")
	}
	if o.rate < 1 || o.duration <= 0 || int64(o.rate)*int64(o.duration/time.Second+1) > 1_000_000 {
		return errors.New("--rate and --duration must be positive and send at most 1,000,000 requests")
	}

	if o.mode == "ws-cycle" || o.mode == "ws-verify" {
		if wo.nodes < 1 || wo.nodes > 100_000 || wo.count < 0 {
			return errors.New("--nodes must be 1 to 100,000 and --count not negative")
		}
		return runWS(ctx, o, wo, out)
	}
	var targeter vegeta.Targeter
	switch o.mode {
	case "verify":
		targeter, err = verifyTargets(ctx, o)
	case "approve":
		targeter, err = approveTargets(ctx, o)
	default:
		return fmt.Errorf("--mode %q: want verify, approve, ws-cycle or ws-verify", o.mode)
	}
	if err != nil {
		return err
	}
	attacker := vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.KeepAlive(true))
	var m vegeta.Metrics
	results := attacker.Attack(targeter, vegeta.Rate{Freq: o.rate, Per: time.Second}, o.duration, o.mode)
	for {
		select {
		case <-ctx.Done():
			attacker.Stop()
		case r, ok := <-results:
			if !ok {
				m.Close()
				report(out, o, &m)
				return nil
			}
			m.Add(r)
		}
	}
}

func report(w io.Writer, o options, m *vegeta.Metrics) {
	fmt.Fprintf(w, "mode=%s rate=%d/s duration=%s url=%s profile=%s\n", o.mode, o.rate, o.duration, o.base, o.profile)
	fmt.Fprintf(w, "requests %d  sent %.0f/s  answered-ok %.0f/s  success %.2f%%\n", m.Requests, m.Rate, m.Throughput, m.Success*100)
	fmt.Fprintf(w, "latency  p50 %s  p90 %s  p99 %s  max %s\n", round(m.Latencies.P50), round(m.Latencies.P90), round(m.Latencies.P99), round(m.Latencies.Max))
	codes := make([]string, 0, len(m.StatusCodes))
	for c := range m.StatusCodes {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	fmt.Fprint(w, "status  ")
	for _, c := range codes {
		fmt.Fprintf(w, " %s×%d", c, m.StatusCodes[c])
	}
	fmt.Fprintln(w)
	for _, e := range m.Errors {
		fmt.Fprintln(w, "error   ", e)
	}
}

func round(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

func (o options) api(path string) string {
	return fmt.Sprintf("%s/api/v1/profiles/%s%s", o.base, url.PathEscape(o.profile), path)
}

func (o options) header() http.Header {
	return http.Header{"Authorization": {"Bearer " + o.token}, "Content-Type": {"application/json"}}
}

// post makes one setup call and decodes its answer.
func (o options) post(ctx context.Context, path string, body any, into any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.api(path), bytes.NewReader(b))
	req.Header = o.header()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no pairgate answers at %s: %w", o.base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %s %s", path, resp.Status, raw)
	}
	return json.Unmarshal(raw, into)
}

type requestResult struct {
	Request struct {
		RequestID string `json:"requestId"`
	} `json:"request"`
}

// verifyTargets pairs one node and verifies its token again and again.
func verifyTargets(ctx context.Context, o options) (vegeta.Targeter, error) {
	node := "load-verify-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var req requestResult
	if err := o.post(ctx, "/requests", map[string]string{"nodeId": node}, &req); err != nil {
		return nil, err
	}
	var approval struct {
		Node struct {
			Token string `json:"token"`
		} `json:"node"`
	}
	if err := o.post(ctx, "/requests/"+req.Request.RequestID+"/approve", nil, &approval); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"nodeId": node, "token": approval.Node.Token})
	return vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: o.api("/verify"), Body: body,
		Header: http.Header{"Content-Type": {"application/json"}}}), nil
}

// approveTargets makes rate×duration pending requests first, then
// approves one per target. The profile's maxPending bounds a round.
func approveTargets(ctx context.Context, o options) (vegeta.Targeter, error) {
	n := int(float64(o.rate) * o.duration.Seconds())
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	ids := make([]string, n)
	for i := range n {
		var req requestResult
		if err := o.post(ctx, "/requests", map[string]string{"nodeId": fmt.Sprintf("load-%s-%d", run, i)}, &req); err != nil {
			return nil, fmt.Errorf("preparing %d pending requests (raise the profile's maxPending, or lower --rate × --duration): %w", n, err)
		}
		ids[i] = req.Request.RequestID
	}
	var next atomic.Int64 // vegeta's workers call the targeter concurrently
	return func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		if i >= int64(len(ids)) {
			return vegeta.ErrNoTargets
		}
		t.Method, t.URL, t.Header = http.MethodPost, o.api("/requests/"+ids[i]+"/approve"), o.header()
		return nil
	}, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pairgate/pairgate/server/wsclient"
)

// The WebSocket modes are closed-loop: each of --clients connections makes
// one call (or cycle) after another, as OpenClaw clients do, and the report
// is what they achieved: throughput and latency percentiles.
//
//	ws-cycle   node.pair.request → node.pair.approve → node.pair.verify of a new node
//	ws-verify  node.pair.verify of --nodes paired nodes, round robin; with
//	           --cycle-clients K, K more connections run cycles meanwhile
//	           (they are reported apart)

type wsOptions struct {
	clients, cycleClients, nodes, count int
}

// wsURL is the WebSocket address of the profile.
func (o options) wsURL() string {
	u, _ := url.Parse(o.base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = "/ws/" + url.PathEscape(o.profile)
	return u.String()
}

// recorder collects latencies from many goroutines.
type recorder struct {
	mu   sync.Mutex
	lat  []time.Duration
	errs atomic.Int64
	last atomic.Pointer[error]
}

func (r *recorder) add(d time.Duration, err error) {
	if err != nil {
		r.errs.Add(1)
		r.last.Store(&err)
		return
	}
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

// count is how many operations succeeded.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lat)
}

func (r *recorder) report(w io.Writer, what string, elapsed time.Duration) {
	r.mu.Lock()
	lat := slices.Clone(r.lat)
	r.mu.Unlock()
	slices.Sort(lat)
	pct := func(p int) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, len(lat)*p/100)]
	}
	fmt.Fprintf(w, "%-8s %d ok  %.0f/s  errors %d\n", what, len(lat), float64(len(lat))/elapsed.Seconds(), r.errs.Load())
	fmt.Fprintf(w, "latency  p50 %s  p90 %s  p99 %s\n", round(pct(50)), round(pct(90)), round(pct(99)))
	if err := r.last.Load(); err != nil {
		fmt.Fprintln(w, "error   ", *err)
	}
}

func runWS(ctx context.Context, o options, wo wsOptions, out io.Writer) error {
	if wo.clients < 1 || wo.cycleClients < 0 || wo.clients+wo.cycleClients > 1000 {
		return fmt.Errorf("--clients must be 1 to 1000 (with --cycle-clients)")
	}
	dial := func() (*wsclient.Conn, error) {
		c, err := wsclient.Dial(ctx, o.wsURL(), o.token)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", o.wsURL(), err)
		}
		return c, nil
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var tokens []string // ws-verify: node i's token
	if o.mode == "ws-verify" {
		c, err := dial()
		if err != nil {
			return err
		}
		for i := range wo.nodes {
			token, err := cycle(ctx, c, fmt.Sprintf("load-%s-v%d", run, i), false)
			if err != nil {
				c.Close()
				return fmt.Errorf("pairing %d nodes to verify: %w", wo.nodes, err)
			}
			tokens = append(tokens, token)
		}
		c.Close()
	}

	// Stop at --duration, or after --count operations.
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var issued atomic.Int64
	more := func() bool {
		return ctx.Err() == nil && (wo.count == 0 || issued.Add(1) <= int64(wo.count))
	}
	main, background := &recorder{}, &recorder{}
	var wg, bg sync.WaitGroup
	var dialErr atomic.Value
	meter := cpuMeter{metrics: strings.TrimSuffix(o.base, "/") + "/metrics"}
	cpuFrom := meter.read(ctx)
	start := time.Now()
	worker := func(n int, rec *recorder, op func(c *wsclient.Conn, i int) error, limited bool) {
		c, err := dial()
		if err != nil {
			dialErr.Store(err)
			cancel()
			return
		}
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		for i := 0; ; i++ {
			if limited && !more() || !limited && ctx.Err() != nil {
				return
			}
			t := time.Now()
			err := op(c, n*1_000_000+i)
			if ctx.Err() != nil {
				return // the run ended mid-call: not counted
			}
			rec.add(time.Since(t), err)
			var answered *wsclient.Error
			if err != nil && !errors.As(err, &answered) {
				// The connection is gone (a 1013 drop, say): connect again,
				// as OpenClaw's clients do, rather than fail every call.
				c.Close()
				if c, err = dial(); err != nil {
					if ctx.Err() == nil {
						dialErr.Store(err)
						cancel()
					}
					c = nil
					return
				}
			}
		}
	}
	cycleOp := func(c *wsclient.Conn, i int) error {
		_, err := cycle(ctx, c, fmt.Sprintf("load-%s-c%d", run, i), true)
		return err
	}
	for n := range wo.clients {
		op := cycleOp
		if o.mode == "ws-verify" {
			op = func(c *wsclient.Conn, i int) error {
				k := i % len(tokens)
				var v struct {
					OK bool `json:"ok"`
				}
				err := c.Call(ctx, "node.pair.verify", map[string]string{"nodeId": fmt.Sprintf("load-%s-v%d", run, k), "token": tokens[k]}, &v)
				if err == nil && !v.OK {
					err = fmt.Errorf("a paired node's token did not verify")
				}
				return err
			}
		}
		wg.Go(func() { worker(n, main, op, true) })
	}
	for n := range wo.cycleClients {
		bg.Go(func() { worker(wo.clients+n, background, cycleOp, false) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpuTo := meter.read(context.WithoutCancel(ctx))
	cancel() // the background cycles end with the measured calls
	bg.Wait()
	if err, ok := dialErr.Load().(error); ok {
		return err
	}
	fmt.Fprintf(out, "mode=%s clients=%d cycle-clients=%d duration=%s url=%s\n", o.mode, wo.clients, wo.cycleClients, elapsed.Round(time.Millisecond), o.wsURL())
	what := "cycles"
	if o.mode == "ws-verify" {
		what = "verifies"
	}
	main.report(out, what, elapsed)
	if wo.cycleClients > 0 {
		background.report(out, "cycles", elapsed)
	}
	// Per op of the measured kind; with --cycle-clients the cycles beside
	// them are in the same CPU.
	meter.report(out, cpuFrom, cpuTo, main.count(), elapsed)
	return nil
}

// cycle pairs a new node: request, approve, and (when check is set)
// verify its token; it returns the token.
func cycle(ctx context.Context, c *wsclient.Conn, node string, check bool) (string, error) {
	var req requestResult
	if err := c.Call(ctx, "node.pair.request", map[string]string{"nodeId": node}, &req); err != nil {
		return "", err
	}
	var a struct {
		Node struct {
			Token string `json:"token"`
		} `json:"node"`
	}
	if err := c.Call(ctx, "node.pair.approve", map[string]string{"requestId": req.Request.RequestID}, &a); err != nil {
		return "", err
	}
	if !check {
		return a.Node.Token, nil
	}
	var v struct {
		OK bool `json:"ok"`
	}
	if err := c.Call(ctx, "node.pair.verify", map[string]string{"nodeId": node, "token": a.Node.Token}, &v); err != nil {
		return "", err
	}
	if !v.OK {
		return "", fmt.Errorf("the new token of %s did not verify", node)
	}
	return a.Node.Token, nil
}

package db

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/internal/syncbuf"
)

func TestExpiryBoundary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		age     time.Duration
		pending bool
	}{
		{"now - ts == ttl is still pending", 5 * time.Minute, true},
		{"ttl + 1 ms is expired", 5*time.Minute + time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s := openStore(t, clk)
			id := mustRequest(t, s, RequestInput{NodeID: "n"}).Request.RequestID
			clk.Advance(tc.age)

			l, _ := s.List(ctx)
			if got := len(l.Pending) == 1; got != tc.pending {
				t.Fatalf("listed pending = %v, want %v", got, tc.pending)
			}
			st, _ := s.RequestStatus(ctx, id)
			if (st.Status == StatusPending) != tc.pending {
				t.Fatalf("status %q", st.Status)
			}
			_, err := s.Approve(ctx, id, byCLI)
			if tc.pending {
				if err != nil {
					t.Fatalf("approve at the boundary: %v", err)
				}
				return
			}
			// Expired: no sweeper has run, and the decision still fails.
			wantCode(t, err, CodeExpired, "request "+id+" expired at "+formatMs(newClock().Now().Add(5*time.Minute).UnixMilli()))
			_, err = s.Reject(ctx, id, byCLI)
			wantCode(t, err, CodeExpired, "")
			if st.DecidedAtMs != newClock().Now().Add(5*time.Minute).UnixMilli() {
				t.Fatalf("expired at %d", st.DecidedAtMs)
			}
		})
	}
}

func TestSweeperEmitsOneExpiredEventPerRequest(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	var ids []string
	// More than one batch, to cross batch boundaries.
	for i := range sweepBatch + 10 {
		ids = append(ids, mustRequest(t, s, RequestInput{NodeID: "n" + strconv.Itoa(i)}).Request.RequestID)
	}
	clk.Advance(time.Minute)
	live := mustRequest(t, s, RequestInput{NodeID: "live"}).Request.RequestID
	clk.Advance(4*time.Minute + time.Millisecond)

	res, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Expired != len(ids) {
		t.Fatalf("expired %d, want %d", res.Expired, len(ids))
	}
	again, _ := s.Sweep(ctx)
	if again.Expired != 0 {
		t.Fatalf("a second sweep expired %d more", again.Expired)
	}
	// Exactly one expired event per request, none for the live one.
	count := map[string]int{}
	for _, e := range allEvents(t, s) {
		if e.Name != EventResolved {
			continue
		}
		var r Resolution
		json.Unmarshal(e.Payload, &r)
		if r.Decision != DecisionExpired || e.Actor != "sweeper" {
			t.Fatalf("unexpected resolution %+v by %s", r, e.Actor)
		}
		count[r.RequestID]++
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Fatalf("request %s has %d expired events", id, count[id])
		}
	}
	if count[live] != 0 {
		t.Fatalf("live request expired")
	}
	if st, _ := s.RequestStatus(ctx, ids[0]); st.Status != StatusExpired {
		t.Fatalf("status after sweep %q", st.Status)
	}
	// A request that a later call found expired first is not expired again.
	clk.Advance(time.Minute)
	mustRequest(t, s, RequestInput{NodeID: "live"})
	res, _ = s.Sweep(ctx)
	if res.Expired != 0 {
		t.Fatalf("sweeper expired %d already-retired requests", res.Expired)
	}
}

// retentionStore keeps decided requests an hour and events two.
func retentionStore(t *testing.T) (*Store, *testClock) {
	t.Helper()
	clk := newClock()
	opts := testOptions(t.TempDir(), clk)
	opts.DecidedRetention = time.Hour
	opts.EventRetention = 2 * time.Hour
	return openWith(t, opts), clk
}

func TestSweeperPrunesByRetention(t *testing.T) {
	s, clk := retentionStore(t)
	id := mustRequest(t, s, RequestInput{NodeID: "a"}).Request.RequestID
	if _, err := s.Reject(ctx, id, byCLI); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if res, _ := s.Sweep(ctx); res.PrunedRequests != 0 {
		t.Fatalf("pruned at exactly the retention")
	}
	clk.Advance(time.Millisecond)
	if res, _ := s.Sweep(ctx); res.PrunedRequests != 1 || res.PrunedEvents != 0 {
		t.Fatalf("sweep %+v, want one request pruned", res)
	}
	_, err := s.RequestStatus(ctx, id)
	wantCode(t, err, CodeNotFound, "unknown requestId")
	clk.Advance(time.Hour)
	if res, _ := s.Sweep(ctx); res.PrunedEvents != 2 {
		t.Fatalf("sweep %+v, want both events pruned", res)
	}
	// seq keeps increasing after pruning (AUTOINCREMENT).
	mustRequest(t, s, RequestInput{NodeID: "b"})
	if evs := allEvents(t, s); len(evs) != 1 || evs[0].Seq != 3 {
		t.Fatalf("events after prune %+v", evs)
	}
}

// Pruning walks the tables oldest first, more than one batch of them,
// and keeps what is still within retention.
func TestSweeperPrunesOldestFirstInBatches(t *testing.T) {
	s, clk := retentionStore(t)
	const old = sweepBatch + 44
	for i := range old {
		id := mustRequest(t, s, RequestInput{NodeID: fmt.Sprintf("old-%d", i)}).Request.RequestID
		if _, err := s.Reject(ctx, id, byCLI); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Hour + time.Millisecond)
	young := mustRequest(t, s, RequestInput{NodeID: "young"}).Request.RequestID
	if _, err := s.Reject(ctx, young, byCLI); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Sweep(ctx); err != nil || res.PrunedRequests != old || res.PrunedEvents != 0 {
		t.Fatalf("sweep %+v, %v; want %d requests pruned and no event", res, err, old)
	}
	if _, err := s.RequestStatus(ctx, young); err != nil {
		t.Fatalf("the young request was pruned: %v", err)
	}
	clk.Advance(time.Hour)
	if res, err := s.Sweep(ctx); err != nil || res.PrunedEvents != 2*old {
		t.Fatalf("sweep %+v, %v; want %d events pruned", res, err, 2*old)
	}
	if evs := allEvents(t, s); len(evs) != 2 || !strings.Contains(string(evs[0].Payload), young) {
		t.Fatalf("events kept %+v, want the young request's two", evs)
	}
}

func TestRunSweeperStopsOnCancel(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	mustRequest(t, s, RequestInput{NodeID: "a"})
	clk.Advance(10 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.RunSweeper(ctx, 10*time.Millisecond)
		close(done)
	}()
	// The first sweep runs at once; wait for its event, then stop.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(eventNames(allEvents(t, s)), EventResolved+":expired") {
		if time.Now().After(deadline) {
			t.Fatal("sweeper did not expire the request")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunSweeper did not return after cancel")
	}
}

// Pruning counts, for each webhook, the events it loses: those after its
// cursor that it would have sent. A webhook that delivered them all, or
// whose filter leaves them out, loses none.
func TestSweeperCountsEventsWebhooksHadNotDelivered(t *testing.T) {
	s, clk := retentionStore(t)
	for _, id := range []string{"behind", "resolved-only"} { // at 0, before every event
		if _, _, err := s.OpenWebhook(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	const n = sweepBatch + 5
	for i := range n {
		mustRequest(t, s, RequestInput{NodeID: fmt.Sprintf("n-%d", i)})
	}
	middle, _, err := s.OpenWebhook(ctx, "middle")
	if err != nil {
		t.Fatal(err)
	}
	middle.Cursor = 100
	if err := s.SaveWebhook(ctx, middle); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenWebhook(ctx, "caught-up"); err != nil { // at the newest event
		t.Fatal(err)
	}
	s.SetWebhookFilter(func(id, event string) bool { return id != "resolved-only" || event == EventResolved })
	clk.Advance(2*time.Hour + time.Millisecond)
	res, err := s.Sweep(ctx)
	// The sweep expires the requests first: their new events are kept.
	if err != nil || res.PrunedEvents != n || !maps.Equal(res.Undelivered, map[string]int{"behind": n, "middle": n - 100}) {
		t.Fatalf("sweep %+v, %v; want %d events pruned, all of them behind's and %d middle's", res, err, n, n-100)
	}
	if got := s.Undelivered("behind"); got != n {
		t.Fatalf("Undelivered(behind) = %d", got)
	}
	if res, err := s.Sweep(ctx); err != nil || res.Undelivered != nil {
		t.Fatalf("a second sweep: %+v, %v", res, err)
	}
}

// What the sweeper does is said at once, then summed into a line a
// minute (and one when it stops): requests that expire one by one, and
// events a webhook loses a few at a time, do not make a line a sweep.
func TestRunSweeperSaysWhatItSweptOnceAMinute(t *testing.T) {
	var logs syncbuf.Buffer
	clk := newClock()
	opts := testOptions(t.TempDir(), clk)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.EventRetention = 3 * time.Minute
	s := openWith(t, opts)
	if _, _, err := s.OpenWebhook(ctx, "behind"); err != nil { // at 0, never delivering
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		mustRequest(t, s, RequestInput{NodeID: fmt.Sprintf("n-%d", i)})
		clk.Advance(time.Minute)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.RunSweeper(ctx, 5*time.Millisecond) }()
	// Each minute the clock moves on, one more request expires, in a
	// sweep of its own.
	for i := range n {
		clk.Advance(time.Minute)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			// The rows the sweeper marked (their events may be pruned).
			var expired int
			if err := s.read.QueryRow(`SELECT count(*) FROM requests WHERE status = 'expired'`).Scan(&expired); err != nil {
				t.Fatal(err)
			}
			if expired == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %d never expired:\n%s", i, logs.String())
			}
		}
	}
	cancel()
	<-done
	lines := regexp.MustCompile(`msg=swept expired=(\d+)`).FindAllStringSubmatch(logs.String(), -1)
	total := 0
	for _, l := range lines {
		k, _ := strconv.Atoi(l[1])
		total += k
	}
	if len(lines) != 2 || total != n {
		t.Fatalf("%d swept lines saying %d expired, want 2 saying %d:\n%s", len(lines), total, n, logs.String())
	}
	lines = regexp.MustCompile(`webhook=behind events=(\d+)`).FindAllStringSubmatch(logs.String(), -1)
	total = 0
	for _, l := range lines {
		k, _ := strconv.Atoi(l[1])
		total += k
	}
	if lost := s.Undelivered("behind"); len(lines) != 2 || int64(total) != lost || lost < n {
		t.Fatalf("%d lines saying the webhook lost %d events, want 2 saying all %d (at least %d, over several sweeps):\n%s", len(lines), total, lost, n, logs.String())
	}
}

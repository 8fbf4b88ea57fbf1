package db

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two Stores on one file stand for the server and the CLI: two processes'
// worth of connection pools competing for SQLite's write lock.
func twoStores(t *testing.T) (*Store, *Store) {
	t.Helper()
	dir := t.TempDir()
	clk := newClock()
	return openStoreAt(t, dir, clk), openStoreAt(t, dir, clk)
}

func TestExactlyOneDecisionAcrossTwoPools(t *testing.T) {
	server, cli := twoStores(t)
	for round := range 5 {
		nodeID := fmt.Sprintf("node-%d", round)
		id := mustRequest(t, server, RequestInput{NodeID: nodeID}).Request.RequestID

		var wg sync.WaitGroup
		type outcome struct {
			approved bool
			token    string
			err      error
		}
		results := make(chan outcome, 64)
		for i := range 64 {
			s := server
			if i%2 == 1 {
				s = cli
			}
			wg.Go(func() {
				if i%4 < 2 {
					a, err := s.Approve(ctx, id, byCLI)
					results <- outcome{approved: err == nil, token: a.Node.Token, err: err}
				} else {
					_, err := s.Reject(ctx, id, byCLI)
					results <- outcome{err: err}
				}
			})
		}
		wg.Wait()
		close(results)

		wins, tokens := 0, 0
		approved := false
		for r := range results {
			if r.err == nil {
				wins++
				approved = r.approved
				if r.token != "" {
					tokens++
				}
				continue
			}
			if ErrorCode(r.err) != CodeConflict {
				t.Fatalf("round %d: a loser got %v, want only 'already decided'", round, r.err)
			}
		}
		if wins != 1 || tokens > 1 {
			t.Fatalf("round %d: %d winners, %d tokens", round, wins, tokens)
		}
		var stored int
		cli.read.QueryRow(`SELECT count(*) FROM nodes WHERE node_id = ?`, nodeID).Scan(&stored)
		if approved != (stored == 1) {
			t.Fatalf("round %d: approved=%v but %d node rows", round, approved, stored)
		}
		resolutions := 0
		for _, e := range allEvents(t, cli) {
			var r Resolution
			json.Unmarshal(e.Payload, &r)
			if e.Name == EventResolved && r.RequestID == id {
				resolutions++
			}
		}
		if resolutions != 1 {
			t.Fatalf("round %d: %d resolution events", round, resolutions)
		}
	}
}

func TestTwoWritersNeverSeeLocked(t *testing.T) {
	server, cli := twoStores(t)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w, s := range []*Store{server, cli} {
		for g := range 4 {
			wg.Go(func() {
				for i := range 50 {
					id := fmt.Sprintf("w%d-g%d-%d", w, g, i)
					res, err := s.Request(ctx, RequestInput{NodeID: id}, byCLI)
					if err == nil {
						_, err = s.Approve(ctx, res.Request.RequestID, byCLI)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent writer failed: %v", err)
	}
	nodes, _ := server.Nodes(ctx)
	if len(nodes) != 400 {
		t.Fatalf("%d nodes paired, want 400", len(nodes))
	}
}

func TestOutboxOrderAndRollback(t *testing.T) {
	s := openStore(t, newClock())
	a := mustRequest(t, s, RequestInput{NodeID: "a"}).Request.RequestID
	b := mustRequest(t, s, RequestInput{NodeID: "b"}).Request.RequestID
	mustApprove(t, s, a)

	// Make the resolution event of the next decision fail: its transaction
	// has already written the node and the request by then.
	if _, err := s.write.Exec(`CREATE TRIGGER fail_events BEFORE INSERT ON events
		WHEN NEW.name = 'node.pair.resolved' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	before := allEvents(t, s)
	if _, err := s.Approve(ctx, b, byCLI); err == nil || ErrorCode(err) != CodeInternal {
		t.Fatalf("approve with a failing event insert = %v", err)
	}
	if _, err := s.Node(ctx, "b"); ErrorCode(err) != CodeNotFound {
		t.Fatalf("a rolled-back approval left a node behind (%v)", err)
	}
	if st, _ := s.RequestStatus(ctx, b); st.Status != StatusPending {
		t.Fatalf("a rolled-back approval changed the request to %s", st.Status)
	}
	if after := allEvents(t, s); len(after) != len(before) {
		t.Fatalf("a rolled-back change produced %d events", len(after)-len(before))
	}
	s.write.Exec(`DROP TRIGGER fail_events`)
	mustApprove(t, s, b)

	// Every change has exactly one event, seq increasing in commit order.
	evs := allEvents(t, s)
	want := []string{EventRequested, EventRequested, EventResolved + ":approved", EventResolved + ":approved"}
	got := eventNames(evs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Fatalf("seq not increasing: %d after %d", evs[i].Seq, evs[i-1].Seq)
		}
	}
}

// An outside trial at 100,000 nodes: concurrent lists, each holding a
// connection of the read pool for its whole scan, took every one, and a
// node's verify (a point read) waited seconds behind them. Whole-table
// reads now take at most bulkReaders connections; the rest stay free.
func TestBulkReadsLeavePointReadsAConnection(t *testing.T) {
	s := openStore(t, newClock())
	token := pairNode(t, s, "node-1")
	release := make(chan struct{})
	var holding atomic.Int32
	var done sync.WaitGroup
	for range readers + 1 { // more than the pool has
		done.Add(1)
		go func() {
			defer done.Done()
			s.bulkRead(ctx, "a list", func(tx *sql.Tx) error {
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM nodes`).Scan(&n); err != nil {
					return err
				}
				holding.Add(1) // and holds its connection until released
				<-release
				return nil
			})
		}()
	}
	for holding.Load() < bulkReaders {
		time.Sleep(time.Millisecond)
	}
	defer func() { close(release); done.Wait() }()
	// Point reads do not watch their context (prepared.queryRow): the
	// wait is bounded here.
	answered := make(chan error, 1)
	go func() {
		v, err := s.Verify(ctx, "node-1", token)
		if err == nil && !v.OK {
			err = fmt.Errorf("verify: %+v", v)
		}
		if err == nil {
			_, err = s.Node(ctx, "node-1")
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("point reads beside %d whole-table reads: %v", readers+1, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("point reads beside %d whole-table reads found no connection of the read pool", readers+1)
	}
}

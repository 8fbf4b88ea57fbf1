package db

import (
	"cmp"
	"context"
	"database/sql"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/pairgate/pairgate/internal/loglimit"
)

// sweepBatch bounds the rows one sweeper transaction touches, so the writer
// is never held for long and other writers interleave between batches.
const sweepBatch = 256

// sweeperOrigin is the audit actor of every expiry, whether the sweeper or a
// new request from the same node found it.
var sweeperOrigin = Origin{Actor: "sweeper"}

// SweepResult counts what one Sweep did.
type SweepResult struct {
	Expired        int
	PrunedRequests int
	PrunedEvents   int
	// Undelivered counts, by webhook id, the pruned events that webhook
	// had not delivered yet: it will never send them.
	Undelivered map[string]int
}

func (r SweepResult) empty() bool {
	return r.Expired == 0 && r.PrunedRequests == 0 && r.PrunedEvents == 0
}

// Sweep marks expired requests expired (one node.pair.resolved event each)
// and prunes decided requests and events past their retention, in batches.
func (s *Store) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	for {
		n, err := s.expireBatch(ctx)
		res.Expired += n
		if err != nil || n < sweepBatch {
			if err != nil {
				return res, err
			}
			break
		}
	}
	var err error
	now := s.nowMs()
	// Pruning walks each table in insertion order, a batch of the oldest
	// rows at a time, and stops at a batch that holds a row still within
	// retention: no index by time is kept for it (each would cost every
	// write a B-tree and a page). A row behind a younger one (an import's
	// old requests, a clock set back) waits for that one's turn.
	res.PrunedRequests, err = s.pruneBatches(ctx, "prune requests",
		`DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests ORDER BY rowid LIMIT ?2)
			AND status <> 'pending' AND decided_at_ms < ?1`, now-s.decidedRetentionMs)
	if err != nil {
		return res, err
	}
	res.PrunedEvents, res.Undelivered, err = s.pruneEvents(ctx, now-s.eventRetentionMs)
	return res, err
}

// pruneEvents is pruneBatches for events, which also counts, for each
// webhook, the pruned events after its cursor: the ones it loses. A
// webhook's delivery goes on with the events kept.
func (s *Store) pruneEvents(ctx context.Context, before int64) (int, map[string]int, error) {
	total := 0
	var lost map[string]int
	wants := func(id, event string) bool { return true }
	if f := s.webhookFilter.Load(); f != nil {
		wants = *f
	}
	for {
		var pruned []prunedEvent
		var behind map[string]int
		err := s.writeTx(ctx, "prune events", func(tx *sql.Tx) error {
			pruned, behind = pruned[:0], nil
			rows, err := tx.QueryContext(ctx, `DELETE FROM events
				WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?2) AND ts_ms < ?1 RETURNING seq, name`, before, sweepBatch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var e prunedEvent
				if err := rows.Scan(&e.seq, &e.name); err != nil {
					rows.Close()
					return err
				}
				pruned = append(pruned, e)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(pruned) == 0 {
				return nil
			}
			behind, err = webhooksBehind(ctx, tx, pruned, wants)
			return err
		})
		if err != nil {
			return total, lost, err
		}
		total += len(pruned)
		for id, n := range behind {
			if lost == nil {
				lost = map[string]int{}
			}
			lost[id] += n
			s.countUndelivered(id, n)
		}
		if len(pruned) < sweepBatch {
			return total, lost, nil
		}
	}
}

type prunedEvent struct {
	seq  int64
	name string
}

// webhooksBehind counts, for each webhook whose cursor is before some of
// the pruned events, how many of them after it the webhook would have
// sent (wants is the webhooks' event filter).
func webhooksBehind(ctx context.Context, tx *sql.Tx, pruned []prunedEvent, wants func(id, event string) bool) (map[string]int, error) {
	newest := slices.MaxFunc(pruned, func(a, b prunedEvent) int { return cmp.Compare(a.seq, b.seq) }).seq
	rows, err := tx.QueryContext(ctx, `SELECT id, cursor FROM webhooks WHERE cursor < ?`, newest)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[string]int
	for rows.Next() {
		var id string
		var cursor int64
		if err := rows.Scan(&id, &cursor); err != nil {
			return nil, err
		}
		n := 0
		for _, e := range pruned {
			if e.seq > cursor && wants(id, e.name) {
				n++
			}
		}
		if n == 0 {
			continue
		}
		if out == nil {
			out = map[string]int{}
		}
		out[id] = n
	}
	return out, rows.Err()
}

func (s *Store) expireBatch(ctx context.Context) (int, error) {
	var n int
	err := s.writeTx(ctx, "expire requests", func(tx *sql.Tx) error {
		now := s.nowMs()
		due, err := queryRequests(ctx, s.w, tx, `SELECT `+requestColumns+` FROM requests
			WHERE status = 'pending' AND ts_ms < ? ORDER BY ts_ms LIMIT ?`, s.expiredBefore(now), sweepBatch)
		if err != nil {
			return err
		}
		n = len(due)
		return s.expire(ctx, tx, now, due)
	})
	return n, err
}

// expire retires pending requests whose time ran out.
func (s *Store) expire(ctx context.Context, tx *sql.Tx, now int64, due []keptRequest) error {
	for _, r := range due {
		if err := s.decide(ctx, tx, r, DecisionExpired, r.TS+s.ttlMs, now, sweeperOrigin); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) pruneBatches(ctx context.Context, what, query string, before int64) (int, error) {
	total := 0
	for {
		var n int64
		err := s.writeTx(ctx, what, func(tx *sql.Tx) error {
			res, err := s.w.exec(ctx, tx, query, before, sweepBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}

// RunSweeper sweeps now and then every interval until ctx is cancelled. It
// returns only when it has stopped; the caller waits for it.
func (s *Store) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	// A failure that lasts (a full disk, a damaged file) is logged once a
	// minute, with the count of the lines left out, not once a sweep.
	failures := &loglimit.Limiter{Burst: 1, Window: time.Minute}
	failed := 0
	// What was swept is said at once, then at most once a minute, summed:
	// requests that age out one by one do not make a line a sweep.
	// So is what each webhook lost: an endpoint down for longer than
	// retention.events loses events every sweep.
	var unsaid SweepResult
	var said time.Time
	say := func() {
		s.log.Info("swept", "expired", unsaid.Expired, "prunedRequests", unsaid.PrunedRequests, "prunedEvents", unsaid.PrunedEvents)
		unsaid, said = SweepResult{}, time.Now()
	}
	lost, lostSaid := map[string]int{}, map[string]time.Time{}
	sayLost := func(id string) {
		s.log.Warn("webhook fell behind retention.events: events it had not delivered were pruned and will never be sent; it goes on with the events kept",
			"webhook", id, "events", lost[id])
		delete(lost, id)
		lostSaid[id] = time.Now()
	}
	defer func() {
		if !unsaid.empty() {
			say()
		}
		for _, id := range slices.Sorted(maps.Keys(lost)) {
			sayLost(id)
		}
	}()
	for {
		res, err := s.Sweep(ctx)
		if err == nil && failed > 0 {
			s.log.Info("sweeping again", "failedSweeps", failed)
			failed = 0
		}
		if err != nil && ctx.Err() == nil {
			failed++
			failures.Log(s.log, slog.LevelError, "sweep failed", "err", err)
		}
		unsaid.Expired += res.Expired
		unsaid.PrunedRequests += res.PrunedRequests
		unsaid.PrunedEvents += res.PrunedEvents
		if !unsaid.empty() && time.Since(said) >= time.Minute {
			say()
		}
		for id, n := range res.Undelivered {
			lost[id] += n
		}
		for _, id := range slices.Sorted(maps.Keys(lost)) {
			if time.Since(lostSaid[id]) >= time.Minute {
				sayLost(id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// queryRequests reads the requests a query of requestColumns finds, in tx,
// with pool's statements (the writer's or the readers').
func queryRequests(ctx context.Context, pool *prepared, tx *sql.Tx, query string, args ...any) ([]keptRequest, error) {
	rows, err := pool.query(ctx, tx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keptRequest
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

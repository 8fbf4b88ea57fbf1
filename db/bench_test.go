package db

import (
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var benchSizes = []int{100, 10_000, 100_000}

// seedPaired stores n paired nodes "seed-0".. directly, in one transaction
// (the point is the size of the store, not how it got there). Node i's token
// is "token-i".
func seedPaired(b *testing.B, s *Store, n int) {
	b.Helper()
	now := s.nowMs()
	err := s.writeTx(ctx, "seed", func(tx *sql.Tx) error {
		stmt, err := tx.Prepare(`INSERT INTO nodes (node_id, token_hash, token_sealed, display_name, platform, caps, created_at_ms, approved_at_ms)
			VALUES (?, ?, ?, ?, 'iOS', '["canvas","camera"]', ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range n {
			id, token := "seed-"+strconv.Itoa(i), "token-"+strconv.Itoa(i)
			if _, err := stmt.Exec(id, hashToken(token), s.seal.seal(id, token), "Node "+strconv.Itoa(i), now-int64(n-i), now-int64(n-i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// benchStore opens a store seeded with n paired nodes. A sub-benchmark's
// function runs again for each b.N and its cleanups run after each run, so
// the store belongs to the parent benchmark and is built once per size.
func benchStore(b, parent *testing.B, n int) *Store {
	b.Helper()
	s, err := Open(ctx, testOptions(parent.TempDir(), &testClock{t: time.Now()}))
	if err != nil {
		b.Fatal(err)
	}
	parent.Cleanup(func() { s.Close() })
	seedPaired(b, s, n)
	return s
}

// eachSize runs body as one sub-benchmark per benchSizes entry, on a
// store seeded with that many paired nodes, built once per size (a
// sub-benchmark's function runs again for each b.N).
func eachSize(b *testing.B, body func(b *testing.B, s *Store, n int)) {
	for _, n := range benchSizes {
		var s *Store
		parent := b
		b.Run(fmt.Sprintf("paired=%d", n), func(b *testing.B) {
			if s == nil {
				s = benchStore(b, parent, n)
			}
			body(b, s, n)
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	eachSize(b, func(b *testing.B, s *Store, n int) {
		var i atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		// Both cores, as the server would use them.
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := strconv.Itoa(int(i.Add(7919) % int64(n)))
				v, err := s.Verify(ctx, "seed-"+k, "token-"+k)
				if err != nil || !v.OK {
					b.Fatalf("verify seed-%s: %+v %v", k, v, err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
	})
}

func BenchmarkRequestApprove(b *testing.B) {
	var seq atomic.Int64 // new node ids, unique across the sizes
	eachSize(b, func(b *testing.B, s *Store, _ int) {
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			id := "new-" + strconv.FormatInt(seq.Add(1), 10)
			res, err := s.Request(ctx, RequestInput{NodeID: id, NodeMeta: NodeMeta{Platform: "iOS"}}, byCLI)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Approve(ctx, res.Request.RequestID, byCLI); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
	})
}

// BenchmarkRequestApproveClients runs request → approve cycles from 1 and
// from 8 concurrent clients on 10,000 paired nodes: with group commit the
// 8 share transactions (and fsyncs). It reports cycles/s and the writes
// per committed transaction.
func BenchmarkRequestApproveClients(b *testing.B) {
	var s *Store
	var seq atomic.Int64
	parent := b
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			if s == nil {
				s = benchStore(b, parent, 10_000)
			}
			batches, writes := s.commit.batches.Load(), s.commit.writes.Load()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						id := "new-" + strconv.FormatInt(seq.Add(1), 10)
						res, err := s.Request(ctx, RequestInput{NodeID: id, NodeMeta: NodeMeta{Platform: "iOS"}}, byCLI)
						if err == nil {
							_, err = s.Approve(ctx, res.Request.RequestID, byCLI)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
			if n := s.commit.batches.Load() - batches; n > 0 {
				b.ReportMetric(float64(s.commit.writes.Load()-writes)/float64(n), "writes/tx")
			}
		})
	}
}

// BenchmarkSweep100k expires 100,000 requests and reports the longest any
// one batch held the writer (the target is 50 ms) and the total.
func BenchmarkSweep100k(b *testing.B) {
	for range b.N {
		b.StopTimer()
		clk := &testClock{t: time.Now()}
		s, err := Open(ctx, testOptions(b.TempDir(), clk))
		if err != nil {
			b.Fatal(err)
		}
		now := s.nowMs()
		err = s.writeTx(ctx, "seed", func(tx *sql.Tx) error {
			stmt, err := tx.Prepare(`INSERT INTO requests (request_id, node_id, is_repair, ts_ms) VALUES (?, ?, 0, ?)`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for i := range 100_000 {
				if _, err := stmt.Exec("r"+strconv.Itoa(i), "n"+strconv.Itoa(i), now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		clk.Advance(time.Hour)
		b.StartTimer()
		var longest time.Duration
		total := 0
		for {
			start := time.Now()
			n, err := s.expireBatch(ctx)
			longest = max(longest, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			total += n
			if n < sweepBatch {
				break
			}
		}
		b.StopTimer()
		if total != 100_000 {
			b.Fatalf("expired %d", total)
		}
		b.ReportMetric(float64(longest.Microseconds())/1000, "max-batch-ms")
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkQuickCheck is the start-up check serve runs on every profile
// (quick_check reads every page once).
func BenchmarkQuickCheck(b *testing.B) {
	eachSize(b, func(b *testing.B, s *Store, _ int) {
		for b.Loop() {
			if err := s.QuickCheck(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCheckOverwrite is the check before an export, or a mirror's
// start, writes over legacy files: here over the store's own export, so
// every node of the file is looked up.
func BenchmarkCheckOverwrite(b *testing.B) {
	eachSize(b, func(b *testing.B, s *Store, _ int) {
		dir := b.TempDir()
		if _, err := s.Export(ctx, dir, false); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := s.CheckOverwrite(ctx, dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkImport100k imports 100,000 paired nodes and 1,000 pending
// requests into a new store, as `pairgate import` does after reading the
// files: one transaction, each record looked up, hashed, sealed and
// written.
func BenchmarkImport100k(b *testing.B) {
	const paired, pending = 100_000, 1_000
	clock := &testClock{t: time.Now()}
	now := clock.t.UnixMilli()
	var st LegacyState
	for i := range paired {
		id := fmt.Sprintf("%064x", i)
		st.Paired = append(st.Paired, Node{NodeID: id, Token: fmt.Sprintf("token-%d-0123456789abcdef", i),
			NodeMeta:    NodeMeta{DisplayName: "Node " + strconv.Itoa(i), Platform: "iOS", Caps: []string{"canvas", "camera"}},
			CreatedAtMs: now - int64(paired-i), ApprovedAtMs: now - int64(paired-i)})
	}
	for i := range pending {
		st.Pending = append(st.Pending, PendingRequest{RequestID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			NodeID: fmt.Sprintf("new-%d", i), TS: now - 1000})
	}
	b.StopTimer()
	for range b.N {
		opts := testOptions(b.TempDir(), clock)
		opts.MaxPending = 10_000
		s, err := Open(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := s.Import(ctx, st, ImportMerge, false, Origin{Actor: "bench"})
		b.StopTimer()
		if err != nil || rep.PairedAdded != paired || rep.PendingAdded != pending {
			b.Fatalf("import: %+v %v", rep, err)
		}
		s.Close()
	}
}

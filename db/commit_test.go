package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdWriter starts a write that keeps its transaction open until release
// is closed, and returns once it is running.
func holdWriter(t *testing.T, s *Store) (release chan struct{}, done chan error) {
	t.Helper()
	release, done, running := make(chan struct{}), make(chan error, 1), make(chan struct{})
	go func() {
		done <- s.writeTx(ctx, "hold", func(tx *sql.Tx) error {
			close(running)
			<-release
			_, err := tx.Exec(`INSERT INTO nodes (node_id, token_hash, token_sealed, created_at_ms, approved_at_ms) VALUES ('held', x'00', x'00', 1, 1)`)
			return err
		})
	}()
	<-running
	return release, done
}

func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.commit.queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", s.commit.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func nodeExists(t *testing.T, s *Store, id string) bool {
	t.Helper()
	var n int
	if err := s.read.QueryRow(`SELECT count(*) FROM nodes WHERE node_id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestGroupCommitSharesTransactions: writes that queue while a transaction
// is open commit together in the next one; a failing write rolls back only
// itself; every caller gets its own answer.
func TestGroupCommitSharesTransactions(t *testing.T) {
	s := openStore(t, newClock())
	release, held := holdWriter(t, s)
	batches, writes := s.commit.batches.Load(), s.commit.writes.Load()

	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.writeTx(ctx, "test", func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO nodes (node_id, token_hash, token_sealed, created_at_ms, approved_at_ms) VALUES (?, x'00', x'00', 1, 1)`, fmt.Sprintf("n%d", i)); err != nil {
					return err
				}
				if i == 3 {
					return &Error{Code: CodeInvalid, Message: "write 3 fails after its insert"}
				}
				return nil
			})
		})
	}
	waitQueued(t, s, n)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if i == 3 {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalid {
				t.Fatalf("write 3 = %v, want its own error", err)
			}
			if nodeExists(t, s, "n3") {
				t.Fatal("the failed write's insert was committed")
			}
			continue
		}
		if err != nil || !nodeExists(t, s, fmt.Sprintf("n%d", i)) {
			t.Fatalf("write %d: %v (committed: %v)", i, err, nodeExists(t, s, fmt.Sprintf("n%d", i)))
		}
	}
	// The ten queued behind the held write join its transaction (when it
	// was held for less than maxHold) or share the next one.
	if b, w := s.commit.batches.Load()-batches, s.commit.writes.Load()-writes; b > 2 || w != n+1 {
		t.Fatalf("%d writes in %d transactions, want %d in at most 2", w, b, n+1)
	}
}

// TestGroupCommitFirstWriteFails: when the write that opened a
// transaction fails after changing rows, none of its changes stay, and
// the writes queued behind it still commit.
func TestGroupCommitFirstWriteFails(t *testing.T) {
	s := openStore(t, newClock())
	running, release, first := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		first <- s.writeTx(ctx, "fails", func(tx *sql.Tx) error {
			close(running)
			<-release
			if _, err := tx.Exec(`INSERT INTO nodes (node_id, token_hash, token_sealed, created_at_ms, approved_at_ms) VALUES ('first', x'00', x'00', 1, 1)`); err != nil {
				return err
			}
			return &Error{Code: CodeInvalid, Message: "the first write fails after its insert"}
		})
	}()
	<-running
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.writeTx(ctx, "test", func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO nodes (node_id, token_hash, token_sealed, created_at_ms, approved_at_ms) VALUES (?, x'00', x'00', 1, 1)`, fmt.Sprintf("q%d", i))
				return err
			})
		})
	}
	waitQueued(t, s, n)
	close(release)
	wg.Wait()
	if err := <-first; ErrorCode(err) != CodeInvalid {
		t.Fatalf("first write = %v, want its own error", err)
	}
	if nodeExists(t, s, "first") {
		t.Fatal("the failed first write's insert was committed")
	}
	for i, err := range errs {
		if err != nil || !nodeExists(t, s, fmt.Sprintf("q%d", i)) {
			t.Fatalf("queued write %d: %v", i, err)
		}
	}
	// And a lone write that fails leaves the writer usable.
	if _, err := s.Approve(ctx, "no-such-request", Origin{Actor: "test"}); ErrorCode(err) != CodeNotFound {
		t.Fatalf("approving an unknown request: %v", err)
	}
	mustRequest(t, s, RequestInput{NodeID: "after"})
}

// TestGroupCommitCancelledBeforeItRuns: a caller that gives up while its
// write waits gets its context's error, and the write never happens.
func TestGroupCommitCancelledBeforeItRuns(t *testing.T) {
	s := openStore(t, newClock())
	release, held := holdWriter(t, s)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.writeTx(cctx, "test", func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO nodes (node_id, token_hash, token_sealed, created_at_ms, approved_at_ms) VALUES ('gone', x'00', x'00', 1, 1)`)
			return err
		})
	}()
	waitQueued(t, s, 1)
	cancel()
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := <-done; !errors.As(err, &e) || e.Code != CodeUnavailable || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write = %v", err)
	}
	if nodeExists(t, s, "gone") {
		t.Fatal("a write whose caller gave up before it ran was committed")
	}
}

// TestGroupCommitClose: writes queued at Close still commit; later ones
// are refused as closed.
func TestGroupCommitClose(t *testing.T) {
	s, err := Open(ctx, testOptions(t.TempDir(), newClock()))
	if err != nil {
		t.Fatal(err)
	}
	release, held := holdWriter(t, s)
	queued := make(chan error, 1)
	go func() {
		queued <- s.writeTx(ctx, "test", func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO nodes (node_id, token_hash, token_sealed, created_at_ms, approved_at_ms) VALUES ('late', x'00', x'00', 1, 1)`)
			return err
		})
	}()
	waitQueued(t, s, 1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("a write queued before Close = %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := s.writeTx(ctx, "test", func(*sql.Tx) error { return nil }); !errors.As(err, &e) || e.Code != CodeUnavailable {
		t.Fatalf("write after Close = %v", err)
	}
}

// The durability policy: new pending requests and connects commit with
// synchronous=NORMAL, never more than maxUnsynced of them before an
// fsync; any decision commits FULL (and so syncs those before it).
func TestLazyWritesAreBoundedAndDecisionsFull(t *testing.T) {
	s := openStore(t, newClock())
	ctx := t.Context()
	if s.commit.unsynced != 0 {
		t.Fatalf("the first commit of a store (its key check) was not FULL: %d unsynced", s.commit.unsynced)
	}
	synchronous := func() int {
		t.Helper()
		var mode int
		if err := s.write.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		return mode // 1 NORMAL, 2 FULL
	}
	first := mustRequest(t, s, RequestInput{NodeID: "n0"})
	if synchronous() != 1 || s.commit.unsynced != 1 {
		t.Fatalf("after a request: synchronous=%d unsynced=%d, want NORMAL and 1", synchronous(), s.commit.unsynced)
	}
	if _, err := s.Approve(ctx, first.Request.RequestID, Origin{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if synchronous() != 2 || s.commit.unsynced != 0 {
		t.Fatalf("after an approval: synchronous=%d unsynced=%d, want FULL and 0", synchronous(), s.commit.unsynced)
	}
	// A decision that is refused writes nothing, so it syncs nothing: the
	// lazy request before it stays counted.
	mustRequest(t, s, RequestInput{NodeID: "n1"})
	if _, err := s.Approve(ctx, "no-such-request", Origin{Actor: "test"}); ErrorCode(err) != CodeNotFound {
		t.Fatalf("approving an unknown request: %v", err)
	}
	if s.commit.unsynced != 1 {
		t.Fatalf("after a refused approval: unsynced=%d, want the lazy request's 1", s.commit.unsynced)
	}
	// A request the policy approves at once is a decision.
	if _, err := s.Request(ctx, RequestInput{NodeID: "auto", AutoApprove: true}, Origin{}); err != nil || synchronous() != 2 {
		t.Fatalf("auto-approved request: %v, synchronous=%d", err, synchronous())
	}
	// However many requests come alone, an fsync comes every maxUnsynced.
	var fulls int
	for i := range maxUnsynced + 10 {
		mustRequest(t, s, RequestInput{NodeID: fmt.Sprintf("flood-%d", i)})
		if s.commit.unsynced > maxUnsynced {
			t.Fatalf("%d unsynced writes, bound %d", s.commit.unsynced, maxUnsynced)
		}
		if s.commit.unsynced == 0 {
			fulls++
		}
	}
	if fulls != 1 {
		t.Fatalf("%d FULL commits in %d lone requests, want 1", fulls, maxUnsynced+10)
	}
}

// After a reboot with a WAL left behind (lazy commits may be lost) Open
// moves the seq past what a power cut could have taken, so no seq is
// handed out twice. After a clean close, or beside a WAL left on the same
// boot (a killed process, another process using the database, Litestream
// keeping its WAL), seqs go on without a gap: nothing was lost.
func TestOpenSkipsLostSeqs(t *testing.T) {
	if seqGap < 2*maxUnsynced {
		t.Fatalf("seqGap %d is below the %d seqs a power cut can take", seqGap, 2*maxUnsynced)
	}
	dir := t.TempDir()
	clk := newClock()
	boot := "boot-1"
	open := func() *Store {
		t.Helper()
		opts := testOptions(dir, clk)
		opts.BootID = func() string { return boot }
		return openWith(t, opts)
	}
	lastSeq := func(s *Store) int64 {
		t.Helper()
		last, err := s.LastSeq(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return last
	}
	s := open()
	mustRequest(t, s, RequestInput{NodeID: "a"})
	s.Close()
	s = open()
	mustRequest(t, s, RequestInput{NodeID: "b"})
	if last := lastSeq(s); last != 2 {
		t.Fatalf("after a clean close: last seq %d, want 2", last)
	}
	// The store stays open (as a killed process leaves its WAL) while a
	// second one opens the same files, on the same boot ...
	other := open()
	mustRequest(t, other, RequestInput{NodeID: "c"})
	if last := lastSeq(other); last != 3 {
		t.Fatalf("beside a WAL of the same boot: last seq %d, want 3", last)
	}
	// ... and after a reboot.
	boot = "boot-2"
	third := open()
	mustRequest(t, third, RequestInput{NodeID: "d"})
	if last := lastSeq(third); last != 3+seqGap+1 {
		t.Fatalf("first seq after a reboot beside a WAL %d, want %d", last, 3+seqGap+1)
	}
	// That boot is recorded: the next open on it moves nothing.
	fourth := open()
	mustRequest(t, fourth, RequestInput{NodeID: "e"})
	if last := lastSeq(fourth); last != 3+seqGap+2 {
		t.Fatalf("second open on the new boot: last seq %d, want %d", last, 3+seqGap+2)
	}
	// Where the boot cannot be told, a WAL left behind counts as a reboot.
	boot = ""
	fifth := open()
	mustRequest(t, fifth, RequestInput{NodeID: "f"})
	if last := lastSeq(fifth); last != 3+2*seqGap+3 {
		t.Fatalf("unknown boot beside a WAL: last seq %d, want %d", last, 3+2*seqGap+3)
	}
}

// A restored database misses what its source committed after the last
// sync: its seq moves on to now in microseconds, past any seq the source
// handed out.
func TestAfterRestoreMovesSeqsOn(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openStoreAt(t, dir, clk)
	mustRequest(t, s, RequestInput{NodeID: "a"})
	s.Close()
	now := time.Now()
	if err := AfterRestore(t.Context(), testOptions(dir, clk).Path, now); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, dir, clk)
	mustRequest(t, s, RequestInput{NodeID: "b"})
	if last, _ := s.LastSeq(t.Context()); last != now.UnixMicro()+1 {
		t.Fatalf("first seq after a restore %d, want %d", last, now.UnixMicro()+1)
	}
	// A seq already past it is kept.
	s.Close()
	if err := AfterRestore(t.Context(), testOptions(dir, clk).Path, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, dir, clk)
	mustRequest(t, s, RequestInput{NodeID: "c"})
	if last, _ := s.LastSeq(t.Context()); last != now.UnixMicro()+2 {
		t.Fatalf("seq after a second restore %d, want %d", last, now.UnixMicro()+2)
	}
}

// The WAL a killed process leaves, with no process holding the database
// any more, is still seen by checkBoot: the open's first look at the
// file (checkContents) once closed the only connection, which
// checkpointed the WAL away, and a reboot then moved no seq on.
func TestWALLeftByAKilledProcessMovesSeqOnAfterAReboot(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	opts := testOptions(dir, clk)
	opts.BootID = func() string { return "boot-1" }
	s := openWith(t, opts)
	mustRequest(t, s, RequestInput{NodeID: "a"})
	// The files as a kill -9 leaves them: copied while the store is open.
	crashed := t.TempDir()
	for _, name := range []string{"pairing.sqlite", "pairing.sqlite-wal", "pairing.key"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(crashed, name), b, 0o600)
	}
	s.Close()
	opts = testOptions(crashed, clk)
	opts.BootID = func() string { return "boot-2" }
	var logged strings.Builder
	opts.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	after := openWith(t, opts)
	mustRequest(t, after, RequestInput{NodeID: "b"})
	if last, err := after.LastSeq(t.Context()); err != nil || last != 1+seqGap+1 {
		t.Fatalf("first seq after a reboot beside a killed process's WAL = %d, %v; want %d", last, err, 1+seqGap+1)
	}
	// The jump is said where the operator looks.
	if !strings.Contains(logged.String(), "event ids move on by 1024") || !strings.Contains(logged.String(), "booted since the last writer") {
		t.Fatalf("the seq moved on without a word:\n%s", logged.String())
	}
}

// CountEventsAfter counts events, where a difference of seqs would count
// the gap a restart after a crash leaves (a webhook 60 events behind was
// listed 1084 behind).
func TestCountEventsAfterAGap(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, newClock())
	mustRequest(t, s, RequestInput{NodeID: "before"})
	before, err := s.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.writeTx(ctx, "move the seq on", func(tx *sql.Tx) error { return moveSeqOn(ctx, tx, "seq + ?", seqGap) }); err != nil {
		t.Fatal(err)
	}
	pairNode(t, s, "after") // requested, then approved: two events
	last, err := s.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last-before <= seqGap {
		t.Fatalf("no gap: seq %d then %d", before, last)
	}
	for _, c := range []struct{ after, want int64 }{{0, 3}, {before, 2}, {last, 0}} {
		if n, err := s.CountEventsAfter(ctx, c.after); err != nil || n != c.want {
			t.Errorf("events after %d: %d %v, want %d", c.after, n, err, c.want)
		}
	}
}

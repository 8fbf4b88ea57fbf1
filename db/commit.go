package db

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit. Every write of this process runs on the one writer
// connection, which one goroutine at a time holds (busy): a write that
// finds it idle runs its transaction on its caller's goroutine, and the
// committer goroutine takes the writes that queue meanwhile. Writes that
// arrive while a transaction is open join it, each inside its own
// SAVEPOINT (so one write's error rolls back only that write); one COMMIT,
// one fsync, acknowledges them all, and no caller is answered before the
// COMMIT that holds its write has returned and its events were handed on.
// A lone write waits for nobody: a transaction takes what is queued and
// never waits for more.
const (
	// maxBatch bounds the writes of one transaction.
	maxBatch = 64
	// maxHold bounds how long one transaction keeps taking new writes, so
	// other processes (import, migrate) and the WAL checkpoint get their
	// turn on the database's write lock.
	maxHold = 20 * time.Millisecond
	// writeAttempts is how often a transaction that met SQLITE_BUSY (a
	// checkpoint, a long writer in another process) is tried again.
	writeAttempts = 5
	// maxUnsynced bounds the lazy writes committed since the last fsync:
	// once reached, the next transaction is synchronous=FULL whatever it
	// holds. With at most two events a lazy write, a power loss can take
	// at most 2×maxUnsynced event seqs, fewer than the gap Open leaves
	// (seqGap), so no seq is ever handed out twice.
	maxUnsynced = 256
)

// write is one caller's write, waiting for its transaction.
type write struct {
	ctx context.Context
	// what names the write for errors and the stall report.
	what string
	fn   func(tx *sql.Tx) error
	done chan error // buffered: the committer never blocks on a caller
	// lazy says the write may be acknowledged before its fsync
	// (synchronous=NORMAL): a new pending request or a connect, whose
	// loss in a power cut costs only the node's retry. A transaction
	// holds lazy writes only, or is FULL.
	lazy bool
}

// committer batches writes into shared transactions.
type committer struct {
	db *sql.DB
	// onCommit is called after each committed transaction, before its
	// writers are answered, with the events it committed (seq order).
	onCommit func([]Event)

	mu     sync.Mutex
	queue  []*write // waiting for a transaction
	closed bool
	// busy says a goroutine (a lone caller, or the committer goroutine)
	// is running transactions on the writer connection.
	busy bool
	// pubMu orders the publishing of commits (onCommit, then the answers).
	pubMu sync.Mutex
	// inline counts transactions run on a caller's goroutine, which close
	// waits for.
	inline  sync.WaitGroup
	wake    chan struct{} // capacity 1: something was queued
	stop    chan struct{}
	stopped sync.WaitGroup

	// batches and writes count committed transactions and the writes in
	// them.
	batches, writes atomic.Int64
	// failure is the last storage failure (disk full, I/O error,
	// read-only, damaged) of a transaction; WriteFailure clears it.
	failure atomic.Pointer[error]
	// since is when the first transaction began that has not been
	// followed by a committed one (Unix nanoseconds; 0 after a commit):
	// a write that fails after SQLITE_BUSY's retries and the next one
	// after it are one stall. running names the first write of the
	// latest transaction. Stalled reads them.
	since   atomic.Int64
	running atomic.Pointer[string]

	// Only the goroutine holding busy touches these: the connection's
	// synchronous setting, and the lazy writes committed since the last
	// FULL commit (whose fsync made them durable too).
	lazyMode bool
	unsynced int
	// events are those of the open transaction's writes so far
	// (appendEvent records them; a write rolled back to its savepoint
	// takes its own back).
	events []Event
}

func newCommitter(db *sql.DB, onCommit func([]Event)) *committer {
	// The first commit is FULL: it makes the WAL file (a new one after a
	// clean close) durable before any lazy commit relies on it.
	c := &committer{db: db, onCommit: onCommit, wake: make(chan struct{}, 1), stop: make(chan struct{}), unsynced: maxUnsynced}
	c.stopped.Add(1)
	go c.run()
	return c
}

// close refuses new writes, lets the committer finish the ones already
// queued, and stops it.
func (c *committer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.stopped.Wait()
		return
	}
	c.closed = true
	close(c.stop)
	c.mu.Unlock()
	c.stopped.Wait()
	c.inline.Wait()
	// What queued behind the last transaction commits now: the committer
	// goroutine may have seen stop before the wake (a select picks either),
	// or a caller's inline transaction ended after it had gone.
	for w := c.acquire(); w != nil; w = c.acquire() {
		c.commit(w)
	}
	c.mu.Lock()
	for _, w := range c.queue {
		w.done <- errClosed
	}
	c.queue = nil
	c.mu.Unlock()
}

// do runs fn in a transaction shared with other writes and returns once
// that transaction committed (or fn's own error once its savepoint was
// rolled back). A caller whose context ends before its write ran gets the
// context's error and its write never runs; once it ran, the caller waits
// for the commit, so its answer is always the truth.
//
// A write that finds the writer idle runs its transaction on the caller's
// own goroutine (taking in what queues meanwhile): a lone writer pays no
// hand-off to the committer goroutine and back, which on a shared
// machine costs more than the write itself. Writes that find a
// transaction in flight queue for the committer goroutine.
func (c *committer) do(ctx context.Context, what string, fn func(tx *sql.Tx) error, lazy bool) error {
	w := &write{ctx: ctx, what: what, fn: fn, done: make(chan error, 1), lazy: lazy}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if !c.busy && len(c.queue) == 0 {
		c.busy = true
		c.inline.Add(1)
		c.mu.Unlock()
		c.commit(w)
		c.inline.Done()
		return <-w.done
	}
	c.queue = append(c.queue, w)
	c.mu.Unlock()
	c.signal()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// Still queued, it leaves the queue and never runs: a caller
		// that gave up is not held behind a transaction that does not
		// end (a disk that hangs). Taken already, it ran or runs: the
		// answer waits for its commit.
		if c.unqueue(w) {
			return ctx.Err()
		}
		return <-w.done
	}
}

// unqueue removes w from the queue, if it is still there.
func (c *committer) unqueue(w *write) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.queue, w)
	if i < 0 {
		return false
	}
	c.queue = slices.Delete(c.queue, i, i+1)
	return true
}

// stalled is how long writes have been tried without one committing
// (retries after SQLITE_BUSY, and transactions that failed, included),
// and what the latest one's first write is; 0 once one commits.
func (c *committer) stalled() (time.Duration, string) {
	since := c.since.Load()
	what := c.running.Load()
	if since == 0 || what == nil {
		return 0, ""
	}
	return time.Since(time.Unix(0, since)), *what
}

// signal wakes the committer goroutine.
func (c *committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// acquire makes the caller the one running transactions on the writer
// connection, if nobody is and a write is queued; it returns the first
// queued write.
func (c *committer) acquire() *write {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy || len(c.queue) == 0 {
		return nil
	}
	c.busy = true
	w := c.queue[0]
	c.queue = c.queue[1:]
	return w
}

// release gives the writer connection up, and hands what queued in the
// meantime to the committer goroutine.
func (c *committer) release() {
	c.mu.Lock()
	c.busy = false
	more := len(c.queue) > 0
	c.mu.Unlock()
	if more {
		c.signal()
	}
}

// record notes an event the open transaction wrote. Only write functions
// call it, on the goroutine holding busy.
func (c *committer) record(e Event) {
	c.events = append(c.events, e)
}

// queued is how many writes wait for a transaction.
func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// take removes up to n queued writes from the front of the queue; with
// lazyOnly, it stops at the first write that is not lazy.
func (c *committer) take(n int, lazyOnly bool) []*write {
	c.mu.Lock()
	defer c.mu.Unlock()
	n = min(n, len(c.queue))
	if lazyOnly {
		for i, w := range c.queue[:n] {
			if !w.lazy {
				n = i
				break
			}
		}
	}
	taken := append([]*write(nil), c.queue[:n]...)
	c.queue = c.queue[n:]
	return taken
}

// fullQueued says whether a write that is not lazy waits among the next
// ones a transaction could take.
func (c *committer) fullQueued() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.queue[:min(len(c.queue), maxBatch-1)] {
		if !w.lazy {
			return true
		}
	}
	return false
}

func (c *committer) run() {
	defer c.stopped.Done()
	for {
		select {
		case <-c.wake:
			for {
				w := c.acquire()
				if w == nil {
					break
				}
				c.commit(w)
			}
		case <-c.stop:
			return
		}
	}
}

// commit runs first and whatever else arrives while the transaction is
// open (up to maxBatch, for up to maxHold), commits once, and answers
// every write of the batch.
func (c *committer) commit(first *write) {
	batch := []*write{first}
	// A decision waiting behind a lazy write makes the transaction FULL:
	// the lazy writes then share its fsync instead of taking a commit of
	// their own before it.
	lazy := first.lazy && c.unsynced < maxUnsynced && !c.fullQueued()
	var results []error
	var err error
	c.running.Store(&first.what)
	c.since.CompareAndSwap(0, time.Now().UnixNano())
	for attempt := 1; attempt <= writeAttempts; attempt++ {
		batch, results, err = c.tryBatch(batch, attempt == 1, lazy)
		if !isBusy(err) {
			break
		}
		select {
		case <-c.stop:
		case <-time.After(time.Duration(attempt*attempt) * 10 * time.Millisecond):
		}
	}
	// A storage failure ends the stall: it is reported as what it is
	// (WriteFailure), and the next write tries the disk again at once.
	if err == nil || storageProblem(err) != "" {
		c.since.Store(0)
	}
	events := c.events
	c.events = nil
	// Only WriteFailure's own check clears a failure: a commit that
	// changed nothing (the sweeper's, every second) took no new page,
	// and cleared it while every real write still failed.
	if err != nil && storageProblem(err) != "" {
		c.failure.Store(&err)
	}
	if err == nil {
		c.batches.Add(1)
		c.writes.Add(int64(len(batch)))
		switch {
		case lazy:
			c.unsynced += len(batch)
		case slices.Contains(results, nil):
			// A write succeeded: this COMMIT wrote WAL frames and synced
			// them, and the lazy ones before them. One whose every write
			// was refused (rolled back to its savepoint) may write no
			// frame, and then syncs nothing: it is not counted on.
			c.unsynced = 0
		}
	}
	// The next transaction may begin while this one's events are handed
	// on and its writers answered; publishing holds pubMu, taken before
	// the writer connection is let go, so commits publish in their order.
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.release()
	if err == nil {
		c.onCommit(events)
	}
	for i, w := range batch {
		if err != nil {
			w.done <- err
		} else {
			w.done <- results[i]
		}
	}
}

// tryBatch runs one transaction: the writes of batch and, when grow is
// set (a first attempt), new ones as they arrive. It returns the batch it
// ran, each write's own result, and the transaction's error (BUSY means:
// run the whole batch again).
func (c *committer) tryBatch(batch []*write, grow, lazy bool) ([]*write, []error, error) {
	if err := c.setLazy(lazy); err != nil {
		return batch, nil, err
	}
	// The transaction must not end with one caller's context: a
	// cancelled caller's statement fails inside its savepoint instead.
	tx, err := c.db.BeginTx(context.Background(), nil)
	if err != nil {
		return batch, nil, err
	}
	c.events = nil
	start := time.Now()
	results := make([]error, 0, len(batch))
	for i := 0; i < len(batch); i++ {
		res, err := c.runSavepoint(tx, batch[i])
		if err != nil {
			tx.Rollback()
			return batch, nil, err
		}
		results = append(results, res)
		if room := c.room(len(batch), lazy); grow && i == len(batch)-1 && room > 0 && time.Since(start) < maxHold {
			batch = append(batch, c.take(room, lazy)...)
		}
	}
	if err := tx.Commit(); err != nil {
		return batch, nil, err
	}
	return batch, results, nil
}

// room is how many more writes a transaction of n may take: maxBatch,
// and for a lazy one, what keeps the unsynced writes within maxUnsynced.
func (c *committer) room(n int, lazy bool) int {
	room := maxBatch - n
	if lazy {
		room = min(room, maxUnsynced-c.unsynced-n)
	}
	return room
}

// setLazy switches the writer connection between synchronous=NORMAL (a
// commit is durable at the next fsync: a later FULL commit or a
// checkpoint) and FULL (durable when COMMIT returns). Set between
// transactions, on the one writer connection.
func (c *committer) setLazy(lazy bool) error {
	if lazy == c.lazyMode {
		return nil
	}
	mode := "FULL"
	if lazy {
		mode = "NORMAL"
	}
	if _, err := c.db.Exec("PRAGMA synchronous=" + mode); err != nil {
		return err
	}
	c.lazyMode = lazy
	return nil
}

// runSavepoint runs one write inside its own savepoint. The write's own
// failure rolls back to the savepoint and is that write's result; a
// failure of the savepoint statements themselves, or SQLITE_BUSY from
// the write, fails the transaction.
func (c *committer) runSavepoint(tx *sql.Tx, w *write) (result, txErr error) {
	if err := w.ctx.Err(); err != nil {
		return err, nil // its caller gave up before it ran: skip it
	}
	if _, err := tx.Exec(`SAVEPOINT write`); err != nil {
		return nil, err
	}
	mark := len(c.events)
	if err := w.fn(tx); err != nil {
		if isBusy(err) {
			return nil, err
		}
		c.events = c.events[:mark]
		if _, rbErr := tx.Exec(`ROLLBACK TO write`); rbErr != nil {
			return nil, errors.Join(err, rbErr)
		}
		if _, relErr := tx.Exec(`RELEASE write`); relErr != nil {
			return nil, relErr
		}
		return err, nil
	}
	if _, err := tx.Exec(`RELEASE write`); err != nil {
		return nil, err
	}
	return nil, nil
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long SQLite itself waits for another connection's
// write lock before answering SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// walSizeLimit is what the WAL is cut back to when the writer restarts
// it: a reader holding a snapshot (a backup, an open sqlite3 shell) lets
// it grow past the checkpoint's 1000 pages (4 MiB), and without a limit
// the file keeps that high-water mark for good.
const walSizeLimit = 8 << 20

// DSN builds the modernc.org/sqlite connection string for a database file.
// Every pragma is in the DSN so that every pooled connection gets it.
// Writers begin their transactions IMMEDIATE: they take the write lock up
// front, so two processes never deadlock upgrading a read to a write.
func DSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
		q.Set("_txlock", "immediate")
	}
	return (&url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}).String()
}

// openPools opens the single writer connection and the read pool. A
// replicated database leaves checkpoints to Litestream (db/replica), as
// Litestream asks of the applications that embed it: the writer's
// automatic checkpoint would otherwise race Litestream's WAL reading, and
// each checkpoint that restarts the WAL behind its back costs the replica
// a full snapshot. Litestream checkpoints itself (PASSIVE from 1000 pages
// or every minute) once it has copied the frames.
func openPools(path string, readers int, replicated bool) (write, read *sql.DB, err error) {
	// SQLite would create the file 0644; made 0600 here first, the -wal and
	// -shm files inherit its mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	f.Close()
	dsn := DSN(path, false)
	if replicated {
		dsn += "&_pragma=wal_autocheckpoint(0)"
	}
	write, err = sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	// Opening the writer first creates the file and switches it to WAL
	// before any reader looks at it.
	if err := write.Ping(); err != nil {
		write.Close()
		return nil, nil, err
	}
	read, err = sql.Open("sqlite", DSN(path, true))
	if err != nil {
		write.Close()
		return nil, nil, err
	}
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	return write, read, nil
}

// sqliteCode returns the extended result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isBusy reports SQLITE_BUSY and SQLITE_LOCKED in any extended form.
func isBusy(err error) bool {
	primary := sqliteCode(err) & 0xff
	return primary == sqlite3.SQLITE_BUSY || primary == sqlite3.SQLITE_LOCKED
}

// storageProblem says how the disk or the file failed: full, an I/O
// error, read-only or unopenable, or damaged; "" for any other error.
// classify answers with it, and the committer keeps such a failure for
// /readyz (WriteFailure).
func storageProblem(err error) string {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN:
		return "the pairing store cannot write to disk"
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return "the pairing store's database is damaged; its operator must restore it from a backup or a replica"
	}
	return ""
}

// IsDamaged reports an error of SQLite's that says the database file is
// damaged (SQLITE_CORRUPT) or is not a database (SQLITE_NOTADB, as a file
// cut short before its header is): restarting does not mend it.
func IsDamaged(err error) bool {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// damaged turns such an error, met opening or reading path, into
// ErrIntegrity with what to do; other errors pass unchanged. An outside
// trial found a database cut short (a half-copied file) answered with
// SQLite's "database disk image is malformed" alone, and exit 1, which a
// supervisor retries for ever.
func damaged(path string, err error) error {
	if !IsDamaged(err) {
		return err
	}
	return fmt.Errorf("%w: %s is damaged or cut short (SQLite: %v); restore it from a backup or a replica (pairgate restore), or move it away to start empty", ErrIntegrity, path, err)
}

// classify turns a storage failure into an *Error for callers: busy and
// I/O-ish failures are "unavailable" (retry later), everything else internal.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeUnavailable, Message: "the operation was cancelled", Err: err}
	}
	if isBusy(err) {
		return &Error{Code: CodeUnavailable, Message: "the pairing store is busy; try again", Err: err}
	}
	if problem := storageProblem(err); problem != "" {
		return &Error{Code: CodeUnavailable, Message: problem, Err: err}
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, errClosed) {
		return &Error{Code: CodeUnavailable, Message: "the pairing store is closed", Err: err}
	}
	return internal(err, what)
}

var errClosed = errors.New("store closed")

// writeTx runs fn in an IMMEDIATE transaction on the writer connection,
// shared with the writes that arrive beside it (commit.go), and returns
// once that transaction committed. busy_timeout already waits for other
// processes; should SQLite still answer BUSY (a checkpoint, a very long
// writer elsewhere) the whole transaction is retried a few times, so no
// "database is locked" reaches a caller while the server and the CLI
// write at once. fn must be safe to run again: it sees a fresh
// transaction each time.
func (s *Store) writeTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	return s.lazyTx(ctx, what, false, fn)
}

// lazyTx is writeTx that, when lazy is set, may acknowledge the write
// before its fsync: for a new pending request or a node's connect (see
// committer). kill -9 cannot lose it (the WAL is in the OS's cache); a
// power cut before the next fsync can, which costs the node a retry.
func (s *Store) lazyTx(ctx context.Context, what string, lazy bool, fn func(tx *sql.Tx) error) error {
	return classify(s.commit.do(ctx, what, fn, lazy), what)
}

// readTx runs fn in one read transaction on the read pool: a consistent
// snapshot of the database.
// bulkRead is readTx for a read of a whole table (a list, a snapshot):
// at most bulkReaders run at once, the others wait for a turn before
// they take a connection of the read pool.
func (s *Store) bulkRead(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	select {
	case s.bulk <- struct{}{}:
	case <-ctx.Done():
		return classify(ctx.Err(), what)
	}
	defer func() { <-s.bulk }()
	return s.readTx(ctx, what, fn)
}

func (s *Store) readTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return classify(err, what)
	}
	defer tx.Rollback()
	return classify(fn(tx), what)
}

// Package db is the pairing store: every rule of pairing, expressed as
// SQLite transactions on one profile's database. The WebSocket, REST and
// CLI faces and the sweeper are thin callers of it. It knows nothing of
// HTTP or WebSocket.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pairgate/pairgate/config"
)

// readers is the size of the read pool: enough for the hot verify path on
// a 2-core machine without crowding the writer.
const readers = 4

// bulkReaders bounds the reads of a whole table at once (lists, snapshots
// for export): the rest of the read pool stays for point reads, a node's
// verify above all. An outside trial at 100,000 nodes: five concurrent
// GET …/nodes, each holding a connection for its 1–2 s scan, took all
// four, and a one-node lookup waited 2.5 s.
const bulkReaders = readers / 2

// Options configure a Store.
type Options struct {
	// Path is the SQLite database file; KeyPath the token-sealing key.
	Path    string
	KeyPath string
	// Serving says the server opens the store, with its configuration:
	// KeyPath is its keyFile already (a refusal does not send the
	// operator to $PAIRGATE_CONFIG).
	Serving bool
	// Now is the clock; tests pin it. Nil means time.Now.
	Now func() time.Time
	// Limits and retention; zero values take the defaults of config.
	TTL              time.Duration
	MaxPending       int
	DecidedRetention time.Duration
	EventRetention   time.Duration
	// Migrate applies pending migrations. Only the holder of the state
	// directory lock may migrate; others find ErrSchemaBehind instead.
	Migrate bool
	// NewKey allows creating pairing.key although the database holds
	// tokens sealed under a lost one (`pairgate new-key`). It never
	// replaces an existing key file.
	NewKey bool
	// Replicated says Litestream streams the database: the store then
	// runs no checkpoint of its own (sqlite.go, openPools).
	Replicated bool
	Logger     *slog.Logger
	// BootID names the machine's current boot; nil reads Linux's
	// boot_id. Tests set it to stand for a reboot.
	BootID func() string
}

// OptionsFor returns the store options of a configured profile.
func OptionsFor(p config.Profile) Options {
	return Options{
		Path:             p.DatabasePath(),
		KeyPath:          p.KeyPath(),
		TTL:              p.TTL,
		MaxPending:       p.MaxPending,
		DecidedRetention: p.DecidedRetention,
		EventRetention:   p.EventRetention,
		Replicated:       p.Replicated(),
	}
}

// Store is one profile's pairing store.
type Store struct {
	write  *sql.DB       // one connection; transactions begin IMMEDIATE
	read   *sql.DB       // query_only pool
	commit *committer    // owns write: every write transaction goes through it
	bulk   chan struct{} // bulkReaders slots: whole-table reads (bulkRead)
	w, r   *prepared
	seal   *sealer
	now    func() time.Time
	log    *slog.Logger
	path   string // the database file
	// onCommit, when set, is handed each commit's events (OnCommit).
	onCommit atomic.Pointer[func([]Event)]

	// undelivered counts, by webhook id, the events pruned before that
	// webhook delivered them, since the store opened.
	undeliveredMu sync.Mutex
	undelivered   map[string]int64
	webhookFilter atomic.Pointer[func(id, event string) bool]

	ttlMs              int64
	maxPending         int
	decidedRetentionMs int64
	eventRetentionMs   int64
}

// Open opens (creating if needed) a profile's database, checks or applies
// its schema, and loads (creating if needed) the sealing key.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := open(ctx, opts)
	if err == nil || errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrLocked) {
		return s, err
	}
	// Damage met anywhere on the way in is refused as damage, with what
	// to do: a re-trial overwrote one page at a time and got SQLite's
	// words alone (the key check, the boot record), goose's ("table
	// already exists"), or a damaged token taken for a wrong key, whose
	// advice (new-key) would have lost every token. Only a failure pays
	// for the check.
	if IsDamaged(err) {
		return nil, damaged(opts.Path, err)
	}
	if qerr := QuickCheckFile(ctx, opts.Path); qerr != nil {
		return nil, fmt.Errorf("%w (met as: %v)", qerr, err)
	}
	return nil, err
}

func open(ctx context.Context, opts Options) (*Store, error) {
	s := &Store{
		path:               opts.Path,
		now:                opts.Now,
		log:                opts.Logger,
		ttlMs:              orDefault(opts.TTL, config.DefaultTTL).Milliseconds(),
		maxPending:         opts.MaxPending,
		decidedRetentionMs: orDefault(opts.DecidedRetention, config.DefaultDecidedRetention).Milliseconds(),
		eventRetentionMs:   orDefault(opts.EventRetention, config.DefaultEventRetention).Milliseconds(),
		bulk:               make(chan struct{}, bulkReaders),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxPending <= 0 {
		s.maxPending = config.DefaultMaxPending
	}
	key, err := readKey(opts.KeyPath)
	if err != nil {
		return nil, err
	}
	if err := checkDatabaseBesideKey(opts, key != nil); err != nil {
		return nil, err
	}
	// A WAL left behind means the last writer did not close cleanly,
	// another process has the database open, or Litestream keeps it; lazy
	// commits, and their seqs, may be lost only if the machine went down
	// since (checkBoot). Looked at before anything opens the database.
	wal, statErr := os.Stat(opts.Path + "-wal")
	walLeft := statErr == nil && wal.Size() > 0
	tables, err := checkContents(ctx, opts, key != nil)
	if err != nil {
		return nil, err
	}
	s.write, s.read, err = openPools(opts.Path, readers, opts.Replicated)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Path, err)
	}
	// The key is checked before any migration: a start refused for its
	// key leaves the database at the schema it had.
	plan, err := s.checkKey(ctx, opts, key, tables)
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := ensureSchema(ctx, s.write, opts.Path, opts.Migrate, s.log); err != nil {
		s.Close()
		return nil, err
	}
	s.commit = newCommitter(s.write, s.published)
	if s.w, err = newPrepared(ctx, s.write, writeStatements); err == nil {
		s.r, err = newPrepared(ctx, s.read, readStatements)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("prepare statements: %w", err)
	}
	if err := s.openKey(ctx, opts, plan); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.checkBoot(ctx, opts, walLeft); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// seqGap is how far Open moves the events' seq on after a reboot with a
// WAL left behind: past every seq a power cut may have taken from the
// process before with its lazy commits (at most two events each,
// maxUnsynced of them), so that a seq an event stream or a webhook
// receiver has seen is never given to another event. A gap in seq is
// harmless: readers ask for what comes after a seq. The first commit of a
// process is FULL (committer), so the WAL file and the boot it records
// (checkBoot) are themselves durable.
const seqGap = 1024

// checkBoot moves the seq on when lazy commits may have been lost: a WAL
// was left behind and the machine has booted since the last writer
// opened the database (or the boot is unknown). It then records this
// boot, in a FULL commit before any lazy one of this process. A process
// killed on a running machine loses nothing it committed: its writes
// were in the page cache, and the next process reads them from there.
func (s *Store) checkBoot(ctx context.Context, opts Options, walLeft bool) error {
	boot := currentBoot(opts)
	var last string
	err := s.read.QueryRowContext(ctx, `SELECT boot_id FROM writer_boot WHERE id = 1`).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read the last writer's boot: %w", err)
	}
	if boot != "" && boot == last {
		return nil
	}
	err = s.writeTx(ctx, "record the boot", func(tx *sql.Tx) error {
		if walLeft {
			if err := moveSeqOn(ctx, tx, "seq + ?", seqGap); err != nil {
				return err
			}
		}
		if boot == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO writer_boot (id, boot_id) VALUES (1, ?)`, boot)
		return err
	})
	if err == nil && walLeft {
		// Said, so that a jump in event ids (and a webhook's seq) is
		// explained where the operator looks.
		why := "the machine has booted since the last writer"
		switch {
		case last == "":
			why = "the last writer recorded no boot (it was a pairgate before schema 8, or never committed)"
		case boot == "":
			why = "this machine's boot cannot be told"
		}
		s.log.Info("event ids move on by 1024: a WAL was left behind and "+why+", so a power cut may have taken commits whose ids streams or webhooks saw; no kept event is lost, readers see a gap",
			"file", opts.Path, "gap", seqGap)
	}
	return err
}

// currentBoot names the machine's current boot, or "" where it cannot be
// told (not Linux): every WAL left behind then counts as a reboot.
func currentBoot(opts Options) string {
	if opts.BootID != nil {
		return opts.BootID()
	}
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// moveSeqOn sets the events' seq (the last one handed out) to expr of the
// current one and arg.
func moveSeqOn(ctx context.Context, tx *sql.Tx, expr string, arg int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = `+expr+` WHERE name = 'events'`, arg)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) SELECT 'events', `+expr+` FROM (SELECT 0 AS seq)`, arg)
	return err
}

// AfterRestore prepares a database restored from a replica, before it is
// put in place: its source may have committed for a while after the
// replica's last sync, and those events' seqs may have reached event
// streams and webhook receivers. The seq moves on to now in microseconds
// (at least): no store hands out a seq a microsecond, so it passes every
// seq the source could have reached since it was itself restored or
// created.
func AfterRestore(ctx context.Context, path string, now time.Time) error {
	conn, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("restored database %s: %w", path, err)
	}
	defer tx.Rollback()
	if err := moveSeqOn(ctx, tx, "max(seq, ?)", now.UnixMicro()); err != nil {
		return fmt.Errorf("restored database %s: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("restored database %s: %w", path, err)
	}
	return conn.Close()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close stops the committer (after the writes already queued) and closes
// both connection pools. It is safe to call more than once.
func (s *Store) Close() error {
	if s.commit != nil {
		s.commit.close()
	}
	var errs []error
	for _, p := range []*prepared{s.w, s.r} {
		if p != nil {
			errs = append(errs, p.close())
		}
	}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.write != nil {
		errs = append(errs, s.write.Close())
	}
	return errors.Join(errs...)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return classify(s.read.PingContext(ctx), "ping")
}

// OnCommit registers fn to be handed the events of each transaction this
// process commits, in seq order, after the COMMIT and before its writers
// are answered: whoever learns of a write from its answer finds its
// events already handed on. fn runs on the writer's goroutine, holding up
// every other write, so it must be quick and must not write to the store.
// Other processes' events are not handed over (read EventsAfter); nil
// unregisters.
func (s *Store) OnCommit(fn func([]Event)) {
	if fn == nil {
		s.onCommit.Store(nil)
		return
	}
	s.onCommit.Store(&fn)
}

func (s *Store) published(events []Event) {
	if fn := s.onCommit.Load(); fn != nil && len(events) > 0 {
		(*fn)(events)
	}
}

func (s *Store) nowMs() int64 { return s.now().UnixMilli() }

// QuickCheck runs SQLite's quick_check over the whole database: a
// damaged file (a disk's or a copy's fault) is refused at start, instead
// of answering writes with rows of other records and failing later. It
// reads every page once.
func (s *Store) QuickCheck(ctx context.Context) error {
	return quickCheck(ctx, s.read, s.path)
}

// QuickCheckFile runs quick_check on the database at path, read-only
// (Open's failures, migrate --status): nil when the file is sound (or
// cannot be looked at: the failure at hand then stands).
func QuickCheckFile(ctx context.Context, path string) error {
	if info, err := os.Stat(path); err != nil || info.Size() == 0 {
		return nil
	}
	conn, done, err := lookAt(path)
	if err != nil {
		return nil
	}
	defer done(true)
	return quickCheck(ctx, conn, path)
}

func quickCheck(ctx context.Context, conn *sql.DB, path string) error {
	rows, err := conn.QueryContext(ctx, `PRAGMA quick_check(5)`)
	if IsDamaged(err) {
		return damaged(path, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %s cannot be checked: %v; restore it from a backup or a replica (pairgate restore)", ErrIntegrity, path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			// One line: SQLite starts a report with "*** in database main ***\n".
			problems = append(problems, strings.Join(strings.Fields(line), " "))
		}
	}
	if err := rows.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s is damaged (SQLite's quick_check: %s); restore it from a backup or a replica (pairgate restore), or move it away to start empty", ErrIntegrity, path, strings.Join(problems, "; "))
	}
	return nil
}

// WriteFailure is nil while the store can write. After a write failed
// for its storage (disk full, I/O error, read-only, damaged), it writes a
// row of 64 KiB to write_check and removes it again, and answers the
// failure of that, or nil once the disk took both: an idle store recovers
// as soon as the disk does. (A check of one page, which the WAL's free
// space took, passed while every real write failed.)
func (s *Store) WriteFailure(ctx context.Context) error {
	seen := s.commit.failure.Load()
	if seen == nil {
		return nil
	}
	for _, stmt := range []string{`INSERT OR REPLACE INTO write_check (id, filler) VALUES (1, zeroblob(65536))`, `DELETE FROM write_check`} {
		if err := s.writeTx(ctx, "write check", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, stmt)
			return err
		}); err != nil {
			return err
		}
	}
	// Cleared unless a write failed again meanwhile.
	s.commit.failure.CompareAndSwap(seen, nil)
	return nil
}

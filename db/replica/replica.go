// Package replica streams each profile's database to its replica with
// Litestream while the server runs, reports how far each replica is
// behind, and restores a database from a replica. It knows nothing of
// HTTP: the server asks it for a Status per profile.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	_ "github.com/benbjohnson/litestream/file" // file:// replicas
	_ "github.com/benbjohnson/litestream/s3"   // s3:// replicas

	"github.com/pairgate/pairgate/config"
)

// DefaultInterval is how often a profile's new WAL frames are sent to its
// replica: the replication window's usual upper bound, less than a
// second plus one upload.
const DefaultInterval = time.Second

// maxBackoff bounds the wait between failed syncs.
const maxBackoff = 30 * time.Second

// Options tune the replicator; zero values take the defaults.
type Options struct {
	// Interval is the time between syncs (DefaultInterval).
	Interval time.Duration
	// Now is the clock that stamps Status (time.Now).
	Now func() time.Time
	// ConfigFile names the configuration in errors about a replica's URL.
	ConfigFile string
}

// Status is one profile's replication state.
type Status struct {
	// URL is the replica, without query (config.Replica.RedactedURL).
	URL string `json:"url"`
	// State is "starting" (no sync yet), "ok" (the last sync succeeded)
	// or "failing" (the last sync failed; LastError says why).
	State string `json:"state"`
	// SyncedAtMs is when the last successful sync began: every change
	// committed before it is on the replica. 0 before the first.
	SyncedAtMs int64 `json:"syncedAtMs"`
	// LagMs is how old SyncedAtMs is: the most a host death would lose
	// now. Since the start while no sync has succeeded.
	LagMs int64 `json:"lagMs"`
	// Errors counts failed syncs since the start; LastError is the last
	// failure (with no credentials: they are never in the URL).
	Errors    int64  `json:"errors"`
	LastError string `json:"lastError,omitempty"`
	// TXID is the replica's position (Litestream's transaction id).
	TXID uint64 `json:"txid"`
}

// Replicator streams the replicated profiles of one server.
type Replicator struct {
	store  *litestream.Store
	dbs    map[string]*stream
	now    func() time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stream is one profile's database and its replica.
type stream struct {
	db       *litestream.DB
	url      string
	interval time.Duration
	log      *slog.Logger

	mu        sync.Mutex
	startedAt time.Time
	syncedAt  time.Time
	errors    int64
	lastErr   string
	txid      uint64
	// warnedAt is when a failure was last logged: the same failure is
	// logged again at most once per failureLogEvery.
	warnedAt time.Time
}

// failureLogEvery spaces the log lines of a replica that keeps failing
// the same way (an outside trial saw one line every 2 s while a final
// sync retried); a new error is logged at once, and a success after
// failures says so.
const failureLogEvery = time.Minute

// Start begins streaming every replicated profile's database (opened and
// migrated by the server first). It returns nil, nil when no profile is
// replicated. The server's own store must be closed before Close, which
// runs the final sync: Litestream may not close while the application
// still holds the file (POSIX locks are per process).
func Start(ctx context.Context, profiles []config.Profile, log *slog.Logger, opts Options) (*Replicator, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Replicator{dbs: map[string]*stream{}, now: opts.Now}
	var dbs []*litestream.DB
	for i, p := range profiles {
		if !p.Replicated() {
			continue
		}
		rc := p.Replicas[0]
		client, err := newClient(ctx, rc.URL)
		if err != nil {
			return nil, clientError(opts.ConfigFile, i, rc, err)
		}
		plog := log.With("profile", p.Name, "replica", rc.RedactedURL())
		db := litestream.NewDB(p.DatabasePath())
		db.MonitorInterval = opts.Interval
		replica := litestream.NewReplicaWithClient(db, client)
		// The stream below drives the uploads itself, so that every
		// failure is counted and every success dated.
		replica.MonitorEnabled = false
		db.Replica = replica
		dbs = append(dbs, db)
		r.dbs[p.Name] = &stream{db: db, url: rc.RedactedURL(), interval: opts.Interval, log: plog, startedAt: opts.Now()}
	}
	if len(dbs) == 0 {
		return nil, nil
	}
	r.store = litestream.NewStore(dbs, litestream.DefaultCompactionLevels)
	names := make([]string, 0, len(r.dbs))
	for name := range r.dbs {
		names = append(names, name)
	}
	slices.Sort(names)
	r.store.Logger = log.With("profiles", strings.Join(names, ",")) // the store is every replicated profile's
	for _, s := range r.dbs {
		s.db.SetLogger(s.log) // NewStore gave each the default logger
	}
	for i, p := range profiles {
		if s := r.dbs[p.Name]; s != nil {
			if err := s.checkNotStale(ctx, opts.ConfigFile, i, p); err != nil {
				return nil, err
			}
		}
	}
	if err := r.store.Open(ctx); err != nil {
		r.store.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("replication: %w", err)
	}
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, s := range r.dbs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s.run(ctx, r.now)
		}()
		s.log.Info("replicating")
	}
	return r, nil
}

// checkNotStale refuses to replicate a database whose replica went on
// without it: it synced up to some transaction, and the replica holds
// later ones, which only another host serving the profile since can have
// written (a host moved with pairgate restore, and the old one started
// again). Litestream would take the database for one restored to an
// earlier state and write it over the replica's newest, and the other
// host's acknowledged decisions would be gone from it; served here, it
// would also verify tokens the other host revoked. A database restored
// here (pairgate restore, restoreIfMissing) has synced nothing yet, and
// starts the replica's next history as Litestream intends.
func (s *stream) checkNotStale(ctx context.Context, configFile string, i int, p config.Profile) error {
	local, err := s.db.Pos()
	if err != nil || local.TXID == 0 {
		return nil // nothing synced from here (or Litestream's Open says what is wrong)
	}
	remote, err := s.db.Replica.MaxLTXFileInfo(ctx, 0)
	if err != nil || remote.MaxTXID <= local.TXID {
		return nil // an unreachable replica: Litestream's Open reports it
	}
	return &config.Error{File: configFile, Key: fmt.Sprintf("profiles[%d].replicas[0].url", i),
		Problem: fmt.Sprintf("%s holds changes to profile %q that this database never had (the replica is at transaction %d, this database last synced transaction %d): another host has served the profile since; serving it here would verify tokens that host revoked, and replicating would write over its decisions", s.url, p.Name, remote.MaxTXID, local.TXID),
		Fix:     fmt.Sprintf("if the profile lives on the other host now, remove it from this host's configuration; to move it back here, stop the other host, move this profile's %s, its -wal and %s away, and run pairgate restore --profile %s", p.DatabasePath(), filepath.Join(filepath.Dir(p.DatabasePath()), "."+filepath.Base(p.DatabasePath())+litestream.MetaDirSuffix), p.Name)}
}

// run syncs every interval (a sync with nothing new costs no upload),
// backing off while the replica fails. Like Litestream's own replica
// monitor it never syncs back to back: under a steady stream of writes,
// one upload a second carries them all, instead of an upload (and its
// fsyncs) per commit.
func (s *stream) run(ctx context.Context, now func() time.Time) {
	wait, backoff := time.Duration(0), s.interval // the first sync at once
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := s.syncOnce(ctx, now); err != nil {
			wait, backoff = backoff, min(2*backoff, maxBackoff)
			continue
		}
		wait, backoff = s.interval, s.interval
	}
}

// syncOnce copies the WAL's committed frames into Litestream's files and
// uploads them: everything committed before it began is then on the
// replica.
func (s *stream) syncOnce(ctx context.Context, now func() time.Time) error {
	began := now()
	err := s.db.SyncAndWait(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			s.errors++
			if err.Error() != s.lastErr || now().Sub(s.warnedAt) >= failureLogEvery {
				s.log.Warn("replication failed; retrying", "err", err, "failures", s.errors)
				s.warnedAt = now()
			}
			s.lastErr = err.Error()
		}
		return err
	}
	if s.lastErr != "" {
		s.log.Info("replication works again", "failures", s.errors)
	}
	s.syncedAt, s.lastErr, s.warnedAt = began, "", time.Time{}
	s.txid = uint64(s.db.Replica.Pos().TXID)
	return nil
}

// Status reports a profile's replication; ok is false when the profile is
// not replicated. A nil Replicator replicates nothing.
func (r *Replicator) Status(profile string) (st Status, ok bool) {
	if r == nil {
		return Status{}, false
	}
	s, ok := r.dbs[profile]
	if !ok {
		return Status{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st = Status{URL: s.url, State: "ok", Errors: s.errors, LastError: s.lastErr, TXID: s.txid}
	since := s.syncedAt
	switch {
	case s.lastErr != "":
		st.State = "failing"
	case s.syncedAt.IsZero():
		st.State = "starting"
	}
	if s.syncedAt.IsZero() {
		since = s.startedAt
	} else {
		st.SyncedAtMs = s.syncedAt.UnixMilli()
	}
	st.LagMs = max(r.now().Sub(since).Milliseconds(), 0)
	return st, true
}

// Close stops the streams, then syncs each database a last time, trying
// again until ctx ends, and closes it. It returns an error unless every
// final sync succeeded: only then does the replica hold everything the
// server acknowledged. (Litestream's own close syncs only a replica that
// synced once since start: one failing from the start was skipped, and
// the exit was 0.) Call it after the server's store is closed. A nil
// Replicator closes nothing.
func (r *Replicator) Close(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.cancel()
	r.wg.Wait()
	// At once: one replica that is down must not spend the others' time.
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for name, s := range r.dbs {
		wg.Go(func() {
			if err := s.finalSync(ctx, r.now); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("profile %q: %w", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := r.store.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// finalSync syncs until one succeeds or ctx ends.
func (s *stream) finalSync(ctx context.Context, now func() time.Time) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := s.syncOnce(ctx, now)
		if err == nil {
			// What an operator stopping the server waits to read (the
			// fleet guide's step 1).
			s.log.Info("final sync done: the replica holds every acknowledged write", "txid", s.txid)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the final sync to %s failed: %w", s.url, err)
		case <-time.After(wait):
		}
	}
}

// newClient opens the replica client of a URL (s3:// or file://).
// CheckClients makes the client of every replicated profile's replica,
// as Start will: serve calls it before it opens any profile, so that a
// replica that cannot be used (AWS_CA_BUNDLE set, a bad S3 setting) is
// refused before start-up has made a state directory or a token file.
func CheckClients(ctx context.Context, profiles []config.Profile, configFile string) error {
	for i, p := range profiles {
		if !p.Replicated() {
			continue
		}
		if _, err := newClient(ctx, p.Replicas[0].URL); err != nil {
			return clientError(configFile, i, p.Replicas[0], err)
		}
	}
	return nil
}

func clientError(configFile string, i int, rc config.Replica, err error) error {
	return &config.Error{File: configFile, Key: fmt.Sprintf("profiles[%d].replicas[0].url", i), Problem: fmt.Sprintf("%s cannot be used (%v)", rc.RedactedURL(), err), Fix: clientFix(err)}
}

// clientFix says what to do about newClient's error.
func clientFix(err error) string {
	if strings.Contains(err.Error(), "RootCAs") && os.Getenv("AWS_CA_BUNDLE") != "" {
		// The AWS SDK cannot add a CA bundle to the HTTP client
		// Litestream brings (docs/configuration.md).
		return "unset AWS_CA_BUNDLE for pairgate: Litestream's S3 client cannot take a CA bundle"
	}
	return "check the bucket, path, endpoint and region, and the S3 credentials in the environment"
}

func newClient(ctx context.Context, url string) (litestream.ReplicaClient, error) {
	client, err := litestream.NewReplicaClientFromURL(url)
	if err != nil {
		return nil, err
	}
	if err := client.Init(ctx); err != nil {
		return nil, err
	}
	return client, nil
}

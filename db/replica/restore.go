package replica

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/benbjohnson/litestream"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
)

// ErrNoBackup says the replica holds no copy of a database yet.
var ErrNoBackup = errors.New("the replica holds no backup")

// ErrExists says a restore would overwrite a database.
var ErrExists = errors.New("a database is already there")

// Restore writes the database held by the replica at url to path, as of
// at (zero: the newest state). It never overwrites: a database (or its
// WAL) at path is refused with ErrExists. The caller holds the state
// directory's lock, so no server is using path. The database appears
// whole or not at all.
func Restore(ctx context.Context, url, path string, at time.Time, log *slog.Logger) error {
	for _, p := range []string{path, path + "-wal"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%w: %s exists; restore into a state directory without one (move it away first if it is really to be replaced)", ErrExists, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	shown := config.Replica{URL: url}.RedactedURL()
	client, err := newClient(ctx, url)
	if err != nil {
		return fmt.Errorf("%s cannot be used (%v); %s", shown, err, clientFix(err))
	}
	if at.IsZero() {
		log.Info("restoring the newest state", "database", path)
	} else {
		log.Info("restoring the state as of a time", "database", path, "asOf", at)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".restoring")
	// A restore interrupted earlier left its files (db.AfterRestore opens
	// the file in WAL mode): they were never the database.
	if err := db.RemoveDatabase(tmp); err != nil {
		return err
	}
	defer db.RemoveDatabase(tmp)
	opt := litestream.NewRestoreOptions()
	opt.OutputPath = tmp
	opt.Timestamp = at
	opt.IntegrityCheck = litestream.IntegrityCheckQuick
	// Litestream logs the restore through its replica's database, or
	// through slog's default (plain log lines) without one: this one is
	// never opened, it only carries the caller's logger.
	shell := litestream.NewDB(tmp)
	shell.Logger = log
	rep := litestream.NewReplicaWithClient(shell, client)
	rep.MonitorEnabled = false
	if err := rep.Restore(ctx, opt); err != nil {
		if errors.Is(err, litestream.ErrTxNotAvailable) || errors.Is(err, litestream.ErrNoSnapshots) {
			return ErrNoBackup
		}
		var unreachable *net.OpError
		if errors.As(err, &unreachable) {
			// Litestream's own words for it ("get v0.3.x time bounds: s3:
			// list generations: …") name its internals, after 8 tries.
			return fmt.Errorf("cannot reach the replica at %s (%v): check its endpoint, and that it is up; nothing was restored", shown, unreachable)
		}
		return fmt.Errorf("restore from %s: %w", shown, err)
	}
	if err := db.AfterRestore(ctx, tmp, time.Now()); err != nil {
		return err
	}
	if err := config.SyncFile(tmp); err != nil {
		return err
	}
	// Litestream's bookkeeping beside a database that is gone describes
	// another history: replication starts afresh from the restored one.
	if err := os.RemoveAll(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+litestream.MetaDirSuffix)); err != nil {
		return err
	}
	// A link, not a rename: it fails rather than replace a database that
	// appeared meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s appeared during the restore", ErrExists, path)
		}
		return err
	}
	return config.SyncDir(filepath.Dir(path))
}

// RestoreIfMissing restores a replicated profile's database before it is
// served, when the profile asks for it (restoreIfMissing) and the state
// directory has none. It reports whether it restored. An empty replica is
// no error: a new profile starts empty (and logs so).
func RestoreIfMissing(ctx context.Context, p config.Profile, log *slog.Logger) (bool, error) {
	if !p.RestoreIfMissing || !p.Replicated() {
		return false, nil
	}
	if _, err := os.Stat(p.DatabasePath()); !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := p.EnsureNodesDir(); err != nil {
		return false, err
	}
	lock, err := db.LockStateDir(p.LockPath())
	if err != nil {
		return false, fmt.Errorf("profile %q: %w", p.Name, err)
	}
	defer lock.Release()
	url := p.Replicas[0].RedactedURL()
	err = Restore(ctx, p.Replicas[0].URL, p.DatabasePath(), time.Time{}, log)
	switch {
	case errors.Is(err, ErrNoBackup):
		log.Warn("restoreIfMissing: the replica holds no backup yet; starting an empty database", "profile", p.Name, "replica", url)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("profile %q: restoring from %s: %w", p.Name, url, err)
	}
	log.Info("restored the database from its replica", "profile", p.Name, "replica", url, "database", p.DatabasePath())
	return true, nil
}

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/migrations"
	"github.com/pressly/goose/v3"
)

func newProvider(db *sql.DB) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectSQLite3, db, migrations.FS)
}

// ensureSchema brings the database to this binary's schema, or refuses it.
func ensureSchema(ctx context.Context, db *sql.DB, path string, migrate bool, log *slog.Logger) error {
	p, err := newProvider(db)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("read schema version of %s: %w", path, err)
	}
	switch {
	case current > target:
		return tooNew(path, current, target)
	case current == target:
		return nil
	case !migrate:
		return fmt.Errorf("%w: %s is at schema version %d and needs %d; run `pairgate migrate` (or start the server) for this state directory", ErrSchemaBehind, path, current, target)
	}
	if current > 0 {
		backup, err := backupBeforeMigrating(ctx, db, path, current)
		if err != nil {
			return fmt.Errorf("%s needs migrating from schema version %d to %d, and the copy made first failed, so nothing was migrated: %w (free space for a copy of the database, then start again)", path, current, target, err)
		}
		log.Info("copied the database before migrating it: an older pairgate can serve this copy (without what is written from now on); see the README's Upgrading",
			"db", path, "backup", backup, "schema", current, "to", target)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	for _, r := range results {
		log.Info("migrated", "db", path, "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration.Round(time.Millisecond))
	}
	return nil
}

// BackupPath is where the database at path is copied before migrations
// from schema version from change it.
func BackupPath(path string, from int64) string {
	return fmt.Sprintf("%s.schema-%d.backup", path, from)
}

// backupBeforeMigrating copies the database, consistent and compacted
// (VACUUM INTO, which reads what its -wal holds too), to BackupPath, owner
// only like the database, and durably: a rollback to an older pairgate
// then has a database that pairgate can serve. An earlier copy from the
// same schema version is replaced.
func backupBeforeMigrating(ctx context.Context, db *sql.DB, path string, from int64) (string, error) {
	dst := BackupPath(path, from)
	tmp := dst + ".partial"
	if err := RemoveDatabase(tmp); err != nil {
		return "", err
	}
	// VACUUM INTO takes an empty file: made first, its mode is ours.
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	f.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		RemoveDatabase(tmp)
		return "", fmt.Errorf("copy to %s: %w", tmp, err)
	}
	// Event ids are never reused: the copy, served again by the older
	// pairgate after a rollback, goes on past every id handed out since
	// this copy (as a restored replica does).
	if err := AfterRestore(ctx, tmp, time.Now()); err != nil {
		RemoveDatabase(tmp)
		return "", err
	}
	for _, suffix := range []string{"-wal", "-shm"} { // empty after the clean close
		os.Remove(tmp + suffix)
	}
	err = config.SyncFile(tmp)
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		RemoveDatabase(tmp)
		return "", err
	}
	return dst, config.SyncDir(filepath.Dir(dst))
}

// RemoveDatabase removes a database file with its -wal and -shm (a copy
// or a database this process made and gave up); files already gone are
// no error.
func RemoveDatabase(path string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// tooNew refuses a database a newer pairgate migrated, and says what
// serves it: that pairgate, or the copy made before it migrated.
func tooNew(path string, current, target int64) error {
	err := fmt.Errorf("%w: %s is at schema version %d, and this pairgate knows versions up to %d (`pairgate version` says which a build knows); run a pairgate that knows %d", ErrSchemaTooNew, path, current, target, current)
	if backup := BackupPath(path, target); fileExists(backup) {
		return fmt.Errorf("%w, or, to go back to this one, put the copy the upgrade made in its place: with the server stopped, move %s and its -wal and -shm files away and copy %s to %s (what was written since the upgrade is not in it; the README's Upgrading says how to carry it over)", err, path, backup, path)
	}
	return fmt.Errorf("%w, or restore a backup made with this one", err)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Migration is one known migration and whether the database has it.
type Migration struct {
	Version   int64
	File      string
	Applied   bool
	AppliedAt time.Time
}

// Migrations reports every migration this binary knows and whether the
// database at path has it. It reads only the goose version table; a
// database newer than this binary is reported with ErrSchemaTooNew.
//
// It opens the database read-only: goose would create its version table
// where there is none, and a re-trial saw `migrate --status` turn an
// empty (0-byte) database beside its key, which serve refuses as lost,
// into a new schema that serve then took for a new, empty profile. With
// no version table, every migration is reported pending.
func Migrations(ctx context.Context, path string) ([]Migration, error) {
	conn, done, err := lookAt(path)
	if err != nil {
		return nil, err
	}
	defer done(true) // a look changes no file
	p, err := newProvider(conn)
	if err != nil {
		return nil, err
	}
	var versioned bool
	err = conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)`, gooseTable).Scan(&versioned)
	if err != nil {
		return nil, damaged(path, fmt.Errorf("read migrations of %s: %w", path, err))
	}
	if !versioned {
		var out []Migration
		for _, src := range p.ListSources() {
			out = append(out, Migration{Version: src.Version, File: src.Path})
		}
		return out, nil
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return nil, damaged(path, fmt.Errorf("read migrations of %s: %w", path, err))
	}
	out := make([]Migration, 0, len(statuses))
	for _, st := range statuses {
		out = append(out, Migration{
			Version:   st.Source.Version,
			File:      st.Source.Path,
			Applied:   st.State == goose.StateApplied,
			AppliedAt: st.AppliedAt,
		})
	}
	// A database from a newer pairgate has versions this binary does not
	// list: say so rather than report it as up to date.
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return out, fmt.Errorf("read schema version of %s: %w", path, err)
	}
	if current > target {
		return out, tooNew(path, current, target)
	}
	return out, nil
}

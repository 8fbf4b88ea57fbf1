package db

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

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
		return fmt.Errorf("%w: %s is at schema version %d, this pairgate knows versions up to %d; run the newer pairgate that wrote it, or restore a backup", ErrSchemaTooNew, path, current, target)
	case current == target:
		return nil
	case !migrate:
		return fmt.Errorf("%w: %s is at schema version %d and needs %d; run `pairgate migrate` (or start the server) for this state directory", ErrSchemaBehind, path, current, target)
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
func Migrations(ctx context.Context, path string) ([]Migration, error) {
	conn, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	p, err := newProvider(conn)
	if err != nil {
		return nil, err
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read migrations of %s: %w", path, err)
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
		return out, fmt.Errorf("%w: %s is at schema version %d, this pairgate knows versions up to %d; run the newer pairgate that wrote it, or restore a backup", ErrSchemaTooNew, path, current, target)
	}
	return out, nil
}

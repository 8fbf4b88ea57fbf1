package db

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

// oldDatabase makes, in dir, a database at schema version 2 (a first
// release's) holding one paired node whose token is sealed under the key
// it writes to pairing.key, as that release left it.
func oldDatabase(t *testing.T, dir string) (token string) {
	t.Helper()
	ctx := context.Background()
	conn, p := gooseOn(t, filepath.Join(dir, "pairing.sqlite"))
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	key := randomBytes(keySize)
	if err := os.WriteFile(filepath.Join(dir, "pairing.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	seal, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	token = NewToken()
	if _, err := conn.ExecContext(ctx, `INSERT INTO nodes (node_id, token_hash, token_sealed, display_name, created_at_ms, approved_at_ms)
		VALUES ('kitchen', ?, ?, 'Kitchen iPad', 1795600000000, 1795600000000)`, hashToken(token), seal.seal("kitchen", token)); err != nil {
		t.Fatal(err)
	}
	conn.Close() // as that release left it: closed
	return token
}

// gooseOn opens the database at path with goose's view of its schema;
// the test closes it.
func gooseOn(t *testing.T, path string) (*sql.DB, *goose.Provider) {
	t.Helper()
	conn, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p, err := newProvider(conn)
	if err != nil {
		t.Fatal(err)
	}
	return conn, p
}

func schemaVersion(t *testing.T, path string) int64 {
	t.Helper()
	conn, p := gooseOn(t, path)
	defer conn.Close()
	v, err := p.GetDBVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// An upgrade copies the database before migrating it: the copy is the
// old schema, with everything in it, for the pairgate that made it.
func TestMigratingCopiesTheDatabaseFirst(t *testing.T) {
	dir := t.TempDir()
	token := oldDatabase(t, dir)
	s := openStoreAt(t, dir, newClock())
	if v, err := s.Verify(context.Background(), "kitchen", token); err != nil || !v.OK {
		t.Fatalf("the old node after migrating: %+v %v", v, err)
	}
	backup := BackupPath(filepath.Join(dir, "pairing.sqlite"), 2)
	st, err := os.Stat(backup)
	if err != nil {
		t.Fatalf("no copy before migrating: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the copy is %v, not owner-only like the database", st.Mode().Perm())
	}
	if v := schemaVersion(t, backup); v != 2 {
		t.Fatalf("the copy is at schema version %d, want 2", v)
	}
	conn, err := sql.Open("sqlite", DSN(backup, false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var name string
	if err := conn.QueryRow(`SELECT display_name FROM nodes WHERE node_id = 'kitchen'`).Scan(&name); err != nil || name != "Kitchen iPad" {
		t.Fatalf("the copy's node: %q %v", name, err)
	}
	// Served again after a rollback, the copy hands out no event id the
	// newer pairgate handed out meanwhile.
	var seq int64
	if err := conn.QueryRow(`SELECT seq FROM sqlite_sequence WHERE name = 'events'`).Scan(&seq); err != nil || seq < time.Now().Add(-time.Hour).UnixMicro() {
		t.Fatalf("the copy's event seq is %d (%v): not moved on past the ids handed out after it", seq, err)
	}
	for _, leftover := range []string{".partial", ".partial-wal", ".partial-shm"} {
		if _, err := os.Stat(backup + leftover); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s was left: %v", leftover, err)
		}
	}
	// A database already current is not copied again.
	s.Close()
	os.Remove(backup)
	openStoreAt(t, dir, newClock())
	if _, err := os.Stat(backup); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a current database was copied: %v", err)
	}
}

// A start refused for its key (wrong, or missing) migrates nothing: the
// pairgate the operator goes back to can still serve the database.
func TestARefusedKeyMigratesNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		key  func(path string) error
	}{
		{"wrong key", func(path string) error { return os.WriteFile(path, randomBytes(keySize), 0o600) }},
		{"missing key", os.Remove},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			oldDatabase(t, dir)
			if err := c.key(filepath.Join(dir, "pairing.key")); err != nil {
				t.Fatal(err)
			}
			_, err := Open(context.Background(), testOptions(dir, newClock()))
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("opened with a %s: %v", c.name, err)
			}
			if v := schemaVersion(t, filepath.Join(dir, "pairing.sqlite")); v != 2 {
				t.Fatalf("a start refused for its key migrated the database to schema version %d", v)
			}
		})
	}
}

// Rolled back to a pairgate that an upgrade migrated away from, the
// refusal says where the copy the upgrade made is, and how to use it.
func TestTheRefusalOfANewerSchemaNamesTheCopy(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir, newClock())
	s.Close()
	path := filepath.Join(dir, "pairing.sqlite")
	current := schemaVersion(t, path)
	conn, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	// A newer pairgate migrated it on, after copying it as this one left it.
	if _, err := conn.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)`, current+1); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	_, err = Open(context.Background(), testOptions(dir, newClock()))
	if !errors.Is(err, ErrSchemaTooNew) || strings.Contains(err.Error(), "put the copy") {
		t.Fatalf("without a copy: %v", err)
	}
	if err := os.WriteFile(BackupPath(path, current), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), testOptions(dir, newClock()))
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "copy "+BackupPath(path, current)+" to "+path) {
		t.Fatalf("with the upgrade's copy: %v", err)
	}
}

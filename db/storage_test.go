package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/internal/syncbuf"
)

func TestTokensAreSealedNotStored(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir, newClock())
	token := pairNode(t, s, "n1")
	s.Close()

	// Neither the database file nor its WAL contains the token.
	for _, name := range []string{"pairing.sqlite", "pairing.sqlite-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(token)) {
			t.Fatalf("%s holds the token in clear", name)
		}
	}

	s = openStoreAt(t, dir, newClock())
	sn, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sn.Paired) != 1 || sn.Paired[0].Token != token || sn.TokenProblem() != nil {
		t.Fatalf("snapshot did not unseal the token: %+v", sn)
	}
}

func TestSealedTokenIsBoundToItsNode(t *testing.T) {
	s := openStore(t, newClock())
	pairNode(t, s, "a")
	pairNode(t, s, "b")
	// Swap a's sealed token into b's row: it must not open there.
	if _, err := s.write.Exec(`UPDATE nodes SET token_sealed = (SELECT token_sealed FROM nodes WHERE node_id = 'a') WHERE node_id = 'b'`); err != nil {
		t.Fatal(err)
	}
	sn, _ := s.Snapshot(ctx)
	if len(sn.Unsealable) != 1 || sn.Unsealable[0] != "b" {
		t.Fatalf("unsealable = %v, want [b]", sn.Unsealable)
	}
}

func TestMissingKeyKeepsVerifyAndExplainsExport(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir, newClock())
	token := pairNode(t, s, "n1")
	s.Close()
	if err := os.Remove(filepath.Join(dir, "pairing.key")); err != nil {
		t.Fatal(err)
	}

	// Only new-key makes a new key; the store then opens as usual.
	openNewKey(t, dir, newClock()).Close()
	s = openStoreAt(t, dir, newClock())
	if v, err := s.Verify(ctx, "n1", token); err != nil || !v.OK {
		t.Fatalf("verify after losing the key = %+v, %v", v, err)
	}
	later := pairNode(t, s, "n2")
	sn, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sn.Unsealable) != 1 || sn.Unsealable[0] != "n1" {
		t.Fatalf("unsealable = %v, want [n1]", sn.Unsealable)
	}
	if sn.Paired[1].Token != later {
		t.Fatalf("a node paired under the new key must export its token")
	}
	problem := sn.TokenProblem()
	if problem == nil || !strings.Contains(problem.Error(), "n1") || !strings.Contains(problem.Error(), "pairing.key") {
		t.Fatalf("problem = %v", problem)
	}
}

func TestKeyFileOfWrongSizeIsRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pairing.key"), []byte("short"), 0o600)
	_, err := Open(ctx, testOptions(dir, newClock()))
	if err == nil || !strings.Contains(err.Error(), "want 32 bytes, found 5") {
		t.Fatalf("open with a bad key = %v", err)
	}
}

func TestFilesAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir, newClock())
	pairNode(t, s, "n")
	for _, name := range []string{"pairing.key", "pairing.sqlite", "pairing.sqlite-wal", "pairing.sqlite-shm"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
}

func TestSchemaNewerThanBinaryIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir, newClock())
	if _, err := s.write.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, 1)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, testOptions(dir, newClock()))
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "version 99999") {
		t.Fatalf("open of a newer schema = %v", err)
	}
}

func TestSchemaBehindNeedsTheMigrator(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir, newClock())
	opts.Migrate = false
	if _, err := Open(ctx, opts); !errors.Is(err, ErrSchemaBehind) {
		t.Fatalf("open without migrating = %v", err)
	}
	openStoreAt(t, dir, newClock()) // migrates
	migs, err := Migrations(ctx, opts.Path)
	if err != nil || len(migs) == 0 || !migs[0].Applied {
		t.Fatalf("migrations %+v, %v", migs, err)
	}
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("open of a current schema without migrating: %v", err)
	}
	s.Close()
}

func TestPragmasAreInForce(t *testing.T) {
	s := openStore(t, newClock())
	for _, tc := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.write, "journal_mode", "wal"},
		{s.write, "synchronous", "2"},
		{s.write, "foreign_keys", "1"},
		{s.write, "busy_timeout", "5000"},
		{s.read, "synchronous", "2"},
		{s.read, "query_only", "1"},
		{s.read, "busy_timeout", "5000"},
	} {
		var got string
		if err := tc.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
}

func TestStateLockRefusesSecondHolder(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes")
	os.Mkdir(nodes, 0o700)
	path := filepath.Join(nodes, "pairing.lock")
	l, err := LockStateDir(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockStateDir(path)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "process ") {
		t.Fatalf("second lock = %v", err)
	}
	l.Release()
	l2, err := LockStateDir(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

// An operator trial filled the disk: every write failed, and /readyz still
// said ok. WriteFailure reports the last write's storage failure, and
// clears itself (its own empty write) once the store can write again,
// with no other write needed. The writer connection made query_only
// stands in for the disk: its writes fail with SQLITE_READONLY.
func TestWriteFailureFollowsTheDisk(t *testing.T) {
	s := openStore(t, newClock())
	if err := s.WriteFailure(ctx); err != nil {
		t.Fatalf("a fresh store: %v", err)
	}
	if _, err := s.write.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Request(ctx, RequestInput{NodeID: "n"}, Origin{Actor: "test"}); ErrorCode(err) != CodeUnavailable {
		t.Fatalf("a request on a read-only store = %v, want unavailable", err)
	}
	if err := s.WriteFailure(ctx); err == nil || !strings.Contains(err.Error(), "cannot write to disk") {
		t.Fatalf("WriteFailure after a failed write = %v", err)
	}
	if err := s.WriteFailure(ctx); err == nil {
		t.Fatal("WriteFailure cleared while the store still cannot write")
	}
	// A commit that writes nothing (the sweeper's, with nothing to
	// expire) succeeds on a full disk: it must not clear the failure (a
	// trial saw /readyz ok again within a second while writes failed).
	if _, err := s.write.Exec(`PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s.commit.failure.Load() == nil {
		t.Fatal("a sweep that changed nothing cleared the failure")
	}
	if _, err := s.write.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.Exec(`PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFailure(ctx); err != nil {
		t.Fatalf("WriteFailure once the store can write: %v", err)
	}
	if err := s.WriteFailure(ctx); err != nil {
		t.Fatalf("WriteFailure after it cleared: %v", err)
	}
}

// An operator trial: with the disk full, "sweep failed" was logged every
// sweep (once a second by default, 250 lines in 3 s at 10 ms), forever.
// It is logged once a minute, and the recovery once.
func TestALastingSweepFailureLogsOnceAMinute(t *testing.T) {
	var logs syncbuf.Buffer
	opts := testOptions(t.TempDir(), newClock())
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := openWith(t, opts)
	if _, err := s.write.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.RunSweeper(ctx, 5*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s:\n%s", what, logs.String())
			}
		}
	}
	waitFor("no sweep failed", func() bool { return strings.Contains(logs.String(), "sweep failed") })
	time.Sleep(200 * time.Millisecond) // forty more sweeps fail, unlogged
	if n := strings.Count(logs.String(), "sweep failed"); n != 1 {
		t.Fatalf("%d lines of sweep failed, want 1 a minute:\n%s", n, logs.String())
	}
	s.write.Exec(`PRAGMA query_only = 0`)
	waitFor("the recovery is not logged", func() bool { return strings.Contains(logs.String(), "sweeping again") })
}

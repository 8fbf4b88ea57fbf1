package db

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openRefused opens the store in dir and wants ErrIntegrity saying want;
// the refusal must leave the state directory's files as they were.
func openRefused(t *testing.T, dir string, opts Options, want string) error {
	t.Helper()
	before := dirState(t, dir)
	s, err := Open(ctx, opts)
	if err == nil {
		s.Close()
		t.Fatalf("opened; want a refusal saying %q", want)
	}
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\nwant ErrIntegrity saying %q", err, want)
	}
	if after := dirState(t, dir); after != before {
		t.Fatalf("a refused open changed the state directory:\n%s\n%s", before, after)
	}
	return err
}

// dirState names each file in dir with its size and, for the key, content.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range entries {
		info, _ := e.Info()
		fmt.Fprintf(&b, "%s:%d ", e.Name(), info.Size())
		if e.Name() == "pairing.key" {
			key, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			b.Write(key)
		}
	}
	return b.String()
}

// A state directory whose files do not belong together is refused with
// ErrIntegrity (exit 78) and what to restore; a new key comes only from
// Options.NewKey, never over an existing key.
func TestStartupIntegrity(t *testing.T) {
	// A store with a paired node, closed: its files, and a copy of them.
	dir := t.TempDir()
	s := openStoreAt(t, dir, newClock())
	token := pairNode(t, s, "n1")
	s.Close()
	key, _ := os.ReadFile(filepath.Join(dir, "pairing.key"))

	t.Run("database missing beside its key", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "pairing.key"), key, 0o600)
		openRefused(t, d, testOptions(d, newClock()), "pairing.key exists but the database "+filepath.Join(d, "pairing.sqlite")+" is missing; restore the database (with its -wal file) from a backup, or, to start an empty store on purpose, move pairing.key away")
	})
	t.Run("empty database beside its key", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "pairing.key"), key, 0o600)
		os.WriteFile(filepath.Join(d, "pairing.sqlite"), nil, 0o600)
		openRefused(t, d, testOptions(d, newClock()), "is empty (0 bytes); restore the database")
	})
	t.Run("key missing with sealed tokens", func(t *testing.T) {
		d := copyStore(t, dir)
		os.Remove(filepath.Join(d, "pairing.key"))
		openRefused(t, d, testOptions(d, newClock()), "pairing.key is missing, and the database holds the tokens of 1 paired node(s) sealed under it; if the server's configuration names a keyFile for this profile, run this command with $PAIRGATE_CONFIG set to that configuration (the key is there, and `new-key` would make it useless for this database); otherwise restore the original pairing.key from a backup (the key is in no replica of the database: copy it from the old host, or from where the operator keeps it); or, if it is lost for good, run `pairgate new-key`")
	})
	t.Run("wrong key", func(t *testing.T) {
		d := copyStore(t, dir)
		os.WriteFile(filepath.Join(d, "pairing.key"), bytes.Repeat([]byte{7}, keySize), 0o600)
		openRefused(t, d, testOptions(d, newClock()), "pairing.key does not open the tokens sealed in "+filepath.Join(d, "pairing.sqlite")+": it is not this database's key")
		// new-key refuses while this key is there: the advice says so.
		openRefused(t, d, testOptions(d, newClock()), "if it is lost for good, move this key away and run `pairgate new-key`")
	})
	t.Run("key missing, opened by the server", func(t *testing.T) {
		// serve has the configuration, keyFile and all: the advice of
		// running with $PAIRGATE_CONFIG is for the CLI's commands.
		d := copyStore(t, dir)
		os.Remove(filepath.Join(d, "pairing.key"))
		opts := testOptions(d, newClock())
		opts.Serving = true
		err := openRefused(t, d, opts, "pairing.key is missing, and the database holds the tokens of 1 paired node(s) sealed under it; restore the original pairing.key")
		if strings.Contains(err.Error(), "PAIRGATE_CONFIG") {
			t.Fatalf("serve is told to set $PAIRGATE_CONFIG: %v", err)
		}
	})
	t.Run("wrong key, database from before the key check", func(t *testing.T) {
		d := copyStore(t, dir)
		s := openStoreAt(t, d, newClock())
		s.write.Exec(`DELETE FROM key_check`)
		s.Close()
		os.WriteFile(filepath.Join(d, "pairing.key"), bytes.Repeat([]byte{7}, keySize), 0o600)
		openRefused(t, d, testOptions(d, newClock()), "it is not this database's key")
	})
	t.Run("new key over an existing one", func(t *testing.T) {
		d := copyStore(t, dir)
		opts := testOptions(d, newClock())
		opts.NewKey = true
		openRefused(t, d, opts, "pairing.key exists; a new key is made only where none is: move it away first")
	})
	t.Run("new key where it was lost", func(t *testing.T) {
		d := copyStore(t, dir)
		os.Remove(filepath.Join(d, "pairing.key"))
		openNewKey(t, d, newClock()).Close()
		// From now on the new key is this database's key, although the
		// only token is still sealed under the lost one.
		s = openStoreAt(t, d, newClock())
		if v, err := s.Verify(ctx, "n1", token); err != nil || !v.OK {
			t.Fatalf("verify after a new key = %+v %v", v, err)
		}
		if sn, _ := s.Snapshot(ctx); len(sn.Unsealable) != 1 {
			t.Fatalf("unsealable = %v, want [n1]", sn.Unsealable)
		}
	})
	// A migration trial: a server with a keyFile, and `pairgate import
	// --state-dir` run without its configuration, made a second key
	// beside the database and sealed the key check under it; the server
	// then refused its own keyFile at the next start. With no token yet,
	// the key check alone now says the database has a key elsewhere.
	t.Run("key missing, nothing sealed", func(t *testing.T) {
		d := t.TempDir()
		s := openStoreAt(t, d, newClock())
		s.Close()
		os.Remove(filepath.Join(d, "pairing.key"))
		openRefused(t, d, testOptions(d, newClock()), "pairing.key is missing, and the database was set up under another key (its key check is sealed under it); if the server's configuration names a keyFile for this profile, run this command with $PAIRGATE_CONFIG set to that configuration")
		openNewKey(t, d, newClock()).Close() // on purpose: new-key
		openStoreAt(t, d, newClock()).Close()
	})
	t.Run("another key, nothing sealed", func(t *testing.T) {
		d := t.TempDir()
		s := openStoreAt(t, d, newClock())
		s.Close()
		os.WriteFile(filepath.Join(d, "pairing.key"), bytes.Repeat([]byte{7}, keySize), 0o600)
		openRefused(t, d, testOptions(d, newClock()), "it is not this database's key")
	})
	// An operator trial: the -wal file of a database never checkpointed
	// held every page; without it the database had no table, and the
	// server set up a new, empty store over the pairings.
	t.Run("database whose -wal was lost", func(t *testing.T) {
		d := t.TempDir()
		s := openStoreAt(t, d, newClock())
		pairNode(t, s, "n1")
		main, err := os.ReadFile(filepath.Join(d, "pairing.sqlite")) // before any checkpoint
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		lost := t.TempDir()
		os.WriteFile(filepath.Join(lost, "pairing.sqlite"), main, 0o600)
		os.WriteFile(filepath.Join(lost, "pairing.key"), key, 0o600)
		if len(main) == 0 {
			t.Skip("SQLite wrote nothing into the database file before its first checkpoint")
		}
		openRefused(t, lost, testOptions(lost, newClock()), "holds no table: its contents were in its -wal file, which is gone")
	})
	t.Run("a database pairgate did not make", func(t *testing.T) {
		d := t.TempDir()
		conn, err := sql.Open("sqlite", filepath.Join(d, "pairing.sqlite"))
		if err == nil {
			_, err = conn.Exec(`CREATE TABLE photos (id INTEGER PRIMARY KEY)`)
			conn.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		openRefused(t, d, testOptions(d, newClock()), "pairing.sqlite is an SQLite database pairgate did not make (its tables: photos; none is pairgate's goose_db_version)")
	})
}

// copyStore copies a closed store's files into a new directory.
func copyStore(t *testing.T, dir string) string {
	t.Helper()
	d := t.TempDir()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, e.Name()), b, 0o600)
	}
	return d
}

// A trial configured a keyFile before moving nodes/pairing.key there (the
// README's step): the refusal advised $PAIRGATE_CONFIG and new-key. It
// says where the key is, and where it goes.
func TestAKeyFileNotYetMovedSaysWhereTheKeyIs(t *testing.T) {
	d := t.TempDir()
	s := openStoreAt(t, d, newClock())
	pairNode(t, s, "n1")
	s.Close()
	opts := testOptions(d, newClock())
	opts.KeyPath = filepath.Join(t.TempDir(), "k.key")
	openRefused(t, d, opts, filepath.Join(d, "pairing.key")+" is there: move it to "+opts.KeyPath)
}

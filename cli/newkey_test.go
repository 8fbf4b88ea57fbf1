package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/fixture"
)

// serve refuses, with exit 78 and what to restore, a state directory
// whose key or database is lost; new-key is the one way to a new key.
func TestServeRefusesALostKeyOrDatabase(t *testing.T) {
	stateDir := t.TempDir()
	nodes := filepath.Join(stateDir, "nodes")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, getenv, nil, &out, &errb)
		return code, out.String(), errb.String()
	}
	serve := func() (int, string) {
		var errb bytes.Buffer
		code := Run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, getenv, nil, io.Discard, &errb)
		return code, errb.String()
	}
	if code, _, errs := run("import", "--from", fixture.Path(t, "snapshots", "04-after-repair-approve")); code != 0 {
		t.Fatalf("import = %d %s", code, errs)
	}
	key, _ := os.ReadFile(filepath.Join(nodes, "pairing.key"))

	os.Remove(filepath.Join(nodes, "pairing.key"))
	if code, errs := serve(); code != 78 || !strings.Contains(errs, "pairing.key is missing, and the database holds the tokens of 1 paired node(s)") || !strings.Contains(errs, "run `pairgate new-key`") {
		t.Fatalf("serve without its key = %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(nodes, "pairing.key")); err == nil {
		t.Fatal("the refused start made a new key")
	}
	if _, err := os.Stat(filepath.Join(nodes, "operator.token")); err == nil {
		t.Fatal("the refused start generated an operator token (a refusal changes no file)")
	}
	if code, out, errs := run("new-key"); code != 0 || !strings.Contains(out, "Wrote a new "+filepath.Join(nodes, "pairing.key")) {
		t.Fatalf("new-key = %d %s%s", code, out, errs)
	}
	if code, _, errs := run("new-key"); code != 78 || !strings.Contains(errs, "pairing.key exists; a new key is made only where none is") {
		t.Fatalf("new-key over a key = %d %s", code, errs)
	}
	srv := startServe(t, getenv)
	srv.stop(t)

	os.WriteFile(filepath.Join(nodes, "pairing.key"), key, 0o600) // the old key, found again: wrong now
	if code, errs := serve(); code != 78 || !strings.Contains(errs, "it is not this database's key") {
		t.Fatalf("serve with another key = %d %s", code, errs)
	}

	for _, name := range []string{"pairing.sqlite", "pairing.sqlite-wal", "pairing.sqlite-shm"} {
		os.Remove(filepath.Join(nodes, name))
	}
	if code, errs := serve(); code != 78 || !strings.Contains(errs, "is missing; restore the database (with its -wal file) from a backup") {
		t.Fatalf("serve without its database = %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(nodes, "pairing.sqlite")); err == nil {
		t.Fatal("the refused start made an empty database")
	}
}

// importedStateDir is a state directory holding the real gateway's final
// pairings, and a function running pairgate on it (exit code, stderr).
func importedStateDir(t *testing.T) (string, func(args ...string) (int, string)) {
	t.Helper()
	stateDir := t.TempDir()
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	run := func(args ...string) (int, string) {
		var errb bytes.Buffer
		code := Run(context.Background(), args, getenv, nil, io.Discard, &errb)
		return code, errb.String()
	}
	if code, errs := run("import", "--from", fixture.Path(t, "snapshots", "06-final")); code != 0 {
		t.Fatalf("import = %d %s", code, errs)
	}
	return stateDir, run
}

// An outside trial's finding: a database cut short (a half-copied file)
// got SQLite's "database disk image is malformed" and exit 1 from serve,
// export and migrate --status, which a supervisor retries for ever. Each
// now exits 78 and says what to do, and changes nothing.
func TestADatabaseCutShortIsRefusedAsDamaged(t *testing.T) {
	for _, size := range []int64{100, 4096, 40000} {
		stateDir, run := importedStateDir(t)
		path := filepath.Join(stateDir, "nodes", "pairing.sqlite")
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(path)
		for _, args := range [][]string{
			{"serve", "--listen", "127.0.0.1:0"},
			{"export", "--to", t.TempDir()},
			{"migrate", "--status"},
		} {
			code, errs := run(args...)
			if code != 78 || !strings.Contains(errs, path+" is damaged or cut short") || !strings.Contains(errs, "restore it from a backup or a replica") {
				t.Errorf("cut to %d bytes, %s = %d %s", size, args[0], code, errs)
			}
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Errorf("cut to %d bytes: a refusal changed the database", size)
		}
	}
}

// An outside trial's finding: export called a database it could not look
// at (a directory of the server's user) "no pairgate database … nothing
// to export". Only a database that is not there is called missing; here
// nodes/ is a file, so the database cannot even be looked for.
func TestExportSaysWhyItCannotReadTheDatabase(t *testing.T) {
	stateDir := t.TempDir()
	os.WriteFile(filepath.Join(stateDir, "nodes"), []byte("not a directory"), 0o600)
	var errb bytes.Buffer
	code := Run(context.Background(), []string{"export", "--to", t.TempDir()}, testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir}), nil, io.Discard, &errb)
	if code != 1 || strings.Contains(errb.String(), "no pairgate database") || !strings.Contains(errb.String(), "cannot read the database: stat "+filepath.Join(stateDir, "nodes", "pairing.sqlite")+": not a directory") {
		t.Fatalf("export = %d %s", code, errb.String())
	}
}

// A re-trial: `migrate --status` on an empty (0-byte) database beside its
// key wrote goose's table into it, and serve then took it for a new,
// empty profile. --status writes nothing, and it and migrate refuse the
// lost database as serve does.
func TestMigrateLeavesAnEmptyDatabaseAsItIs(t *testing.T) {
	stateDir, run := importedStateDir(t)
	path := filepath.Join(stateDir, "nodes", "pairing.sqlite")
	db.RemoveDatabase(path)
	os.WriteFile(path, nil, 0o600)
	for _, args := range [][]string{{"migrate", "--status"}, {"migrate"}, {"serve", "--listen", "127.0.0.1:0"}} {
		if code, errs := run(args...); code != 78 || !strings.Contains(errs, "is empty (0 bytes)") {
			t.Errorf("%v = %d %s", args, code, errs)
		}
		if info, err := os.Stat(path); err != nil || info.Size() != 0 {
			t.Fatalf("after %v the database is %v %v", args, info, err)
		}
	}
}

// A re-trial overwrote one page of a database at a time: some damage was
// refused as damage (78, restore it), some answered with SQLite's words
// and no way out ("token key: database disk image is malformed"). Damage
// on any page is now either unnoticed (a page nothing reads) or refused
// with exit 78 and what to restore.
func TestDamageOnAnyPageIsRefusedAsDamage(t *testing.T) {
	pristine := t.TempDir()
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": pristine})
	if code := Run(context.Background(), []string{"import", "--from", fixture.Path(t, "snapshots", "06-final")}, getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("import = %d", code)
	}
	if code := Run(context.Background(), []string{"migrate"}, getenv, nil, io.Discard, io.Discard); code != 0 { // checkpoints: every page in the file
		t.Fatalf("migrate = %d", code)
	}
	raw, err := os.ReadFile(filepath.Join(pristine, "nodes", "pairing.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(pristine, "nodes", "pairing.key"))
	refused := map[string]int{}
	for page := range len(raw) / 4096 {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "nodes"), 0o700)
		damaged := bytes.Clone(raw)
		copy(damaged[page*4096+100:(page+1)*4096], bytes.Repeat([]byte{0xA5}, 4096))
		os.WriteFile(filepath.Join(dir, "nodes", "pairing.sqlite"), damaged, 0o600)
		os.WriteFile(filepath.Join(dir, "nodes", "pairing.key"), key, 0o600)
		// migrate --status first: it must change nothing export then meets.
		for _, args := range [][]string{{"migrate", "--status"}, {"export", "--to", t.TempDir()}} {
			var errb bytes.Buffer
			code := Run(context.Background(), args, testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": dir}), nil, io.Discard, &errb)
			switch {
			case code == 0:
			case code == 78 && strings.Contains(errb.String(), "restore it from a backup or a replica"):
				refused[args[0]]++
			default:
				t.Errorf("page %d damaged: %s = %d %s", page, args[0], code, errb.String())
			}
		}
	}
	if refused["export"] == 0 {
		t.Fatalf("no damaged page of %d was refused", len(raw)/4096)
	}
	// The status command looks at the whole file too: it reported
	// "applied" for damage export refuses (a re-trial).
	if refused["migrate"] < refused["export"] {
		t.Fatalf("migrate --status refused %d damaged pages, export %d", refused["migrate"], refused["export"])
	}
}

// A re-trial: export could not read a state directory it may not write (a
// backup copy, a read-only mount), since the store opens for writing. It
// now reads a private copy of the database (openCopy, used when the state
// directory is not writable; the tests run as root, for whom every
// directory here is, so openCopy is called directly). The copy exports
// what the store holds, leaves the state directory as it was, and refuses
// while a server holds the directory.
func TestExportReadsACopyOfAStateDirectoryItCannotWrite(t *testing.T) {
	stateDir, run := importedStateDir(t)
	direct := t.TempDir()
	if code, errs := run("export", "--to", direct); code != 0 {
		t.Fatalf("export = %d %s", code, errs)
	}
	before := dirContents(t, filepath.Join(stateDir, "nodes"))
	p := config.NewProfile("default", stateDir)
	store, closeStore, err := openCopy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	fromCopy := t.TempDir()
	if _, err := store.Export(context.Background(), fromCopy, false); err != nil {
		t.Fatal(err)
	}
	closeStore()
	for _, name := range []string{"paired.json", "pending.json"} {
		want, _ := os.ReadFile(filepath.Join(direct, name))
		got, _ := os.ReadFile(filepath.Join(fromCopy, name))
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Fatalf("%s from the copy differs:\n%s\nwant\n%s", name, got, want)
		}
	}
	if after := dirContents(t, filepath.Join(stateDir, "nodes")); after != before {
		t.Fatalf("reading a copy changed the state directory:\n%s\nwas\n%s", after, before)
	}
	lock, err := db.LockStateDir(p.LockPath())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, _, err := openCopy(context.Background(), p); err == nil || !strings.Contains(err.Error(), "is served by a running server") {
		t.Fatalf("a copy of a served state directory: %v", err)
	}
}

// dirContents lists a directory's files with their sizes and times.
func dirContents(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %v\n", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

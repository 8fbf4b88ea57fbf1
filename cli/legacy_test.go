package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db/fixture"
)

func TestImportExportCommands(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	from := fixture.Path(t, "snapshots", "05-after-expiry-and-new-requests")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, getenv, nil, &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := run("import", "--from", from, "--dry-run")
	if code != 0 || !strings.Contains(out, "paired:  1 added") || !strings.Contains(out, "Dry run: nothing was changed.") {
		t.Fatalf("dry run = %d\n%s%s", code, out, errs)
	}
	// It created nothing: a database it left would have kept the
	// server's first start from importing the files (a migration trial).
	if entries, err := os.ReadDir(stateDir); err == nil || !os.IsNotExist(err) {
		t.Fatalf("the dry run created the state directory: %v %v", entries, err)
	}
	// The recorded requests expired long ago (5-minute ttl): skipped, counted.
	code, out, _ = run("import", "--from", from)
	if code != 0 || !strings.Contains(out, "paired:  1 added") || !strings.Contains(out, "skipped 2 expired") {
		t.Fatalf("import = %d\n%s", code, out)
	}
	// Again: the node is held, the requests still expired; it does not
	// claim the profile holds them.
	code, out, _ = run("import", "--from", from)
	if code != 0 || !strings.Contains(out, "paired:  0 added, 0 replaced, 1 kept") || !strings.Contains(out, "Nothing changed: what the profile does not hold was skipped (above).") {
		t.Fatalf("second import = %d\n%s", code, out)
	}
	to := t.TempDir()
	code, out, _ = run("export", "--to", to)
	if code != 0 || !strings.Contains(out, "Wrote paired.json (1 paired) and pending.json (0 pending)") {
		t.Fatalf("export = %d\n%s", code, out)
	}
	if code, out, _ = run("import", "--from", to); code != 0 || !strings.Contains(out, "Nothing to change: the profile already holds all of it.") {
		t.Fatalf("importing its own export = %d\n%s", code, out)
	}
	want, _ := os.ReadFile(filepath.Join(from, "paired.json"))
	got, _ := os.ReadFile(filepath.Join(to, "paired.json"))
	if !bytes.Equal(got, want) {
		t.Fatalf("exported paired.json differs:\n%s", got)
	}
	if pending, _ := os.ReadFile(filepath.Join(to, "pending.json")); string(pending) != "{}" {
		t.Fatalf("pending.json %q", pending)
	}

	// --from a directory that is not there, or OpenClaw's state
	// directory instead of its nodes/: said so.
	if code, _, errs := run("import", "--from", filepath.Join(to, "missing")); code == 0 || !strings.Contains(errs, "missing does not exist: --from names the directory holding paired.json and pending.json") {
		t.Fatalf("import --from a missing directory = %d %s", code, errs)
	}
	gw := t.TempDir()
	os.MkdirAll(filepath.Join(gw, "nodes"), 0o700)
	os.WriteFile(filepath.Join(gw, "nodes", "paired.json"), []byte("{}"), 0o600)
	if code, _, errs := run("import", "--from", gw); code == 0 || !strings.Contains(errs, "has them: --from "+filepath.Join(gw, "nodes")) {
		t.Fatalf("import --from a state directory = %d %s", code, errs)
	}

	// --replace from a directory missing one file: refused (it would
	// have removed every pairing).
	onlyPending := t.TempDir()
	os.WriteFile(filepath.Join(onlyPending, "pending.json"), []byte("{}"), 0o600)
	if code, _, errs := run("import", "--from", onlyPending, "--replace"); code == 0 || !strings.Contains(errs, "has no paired.json: it would remove every record of that kind") {
		t.Fatalf("import --replace without paired.json = %d %s", code, errs)
	}
	if code, out, _ := run("import", "--from", to); code != 0 || !strings.Contains(out, "Nothing to change") {
		t.Fatalf("after the refused --replace the profile changed:\n%s", out)
	}

	// A bad file: every problem, exit 1, nothing changed.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "paired.json"), []byte(`{"a":{"nodeId":"b","token":""}}`), 0o600)
	code, _, errs = run("import", "--from", bad, "--replace")
	if code != 1 || !strings.Contains(errs, `paired.json: $["a"].nodeId: "b" differs from the key it is filed under`) ||
		!strings.Contains(errs, `$["a"].createdAtMs: missing`) {
		t.Fatalf("bad import = %d\n%s", code, errs)
	}
	code, out, _ = run("export", "--to", to, "--redact-tokens")
	if code != 0 || !strings.Contains(out, "(1 paired)") {
		t.Fatalf("the refused import changed the store:\n%s", out)
	}
	if code, _, errs := run("import", "--from", t.TempDir()); code != 1 || !strings.Contains(errs, "no paired.json or pending.json in") {
		t.Fatalf("empty dir = %d %s", code, errs)
	}
}

func TestImportWhileServing(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	srv := startServe(t, getenv)
	var out bytes.Buffer
	code := Run(context.Background(), []string{"import", "--from", fixture.Path(t, "snapshots", "04-after-repair-approve")}, getenv, nil, &out, io.Discard)
	if code != 0 || !strings.Contains(out.String(), "paired:  1 added") {
		t.Fatalf("import beside a server = %d %s", code, out.String())
	}
	srv.stop(t)
}

// A FIFO named paired.json is refused at once (it used to hang import
// with SIGTERM ignored), and a cancelled context, what SIGTERM gives
// cmd/pairgate, stops an import before it changes anything.
func TestImportRefusesFIFOAndStopsOnCancel(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "paired.json"), 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	type result struct {
		code int
		errs string
	}
	done := make(chan result, 1)
	go func() {
		var errb bytes.Buffer
		code := Run(context.Background(), []string{"import", "--from", dir}, getenv, nil, io.Discard, &errb)
		done <- result{code, errb.String()}
	}()
	select {
	case r := <-done:
		if r.code != 1 || !strings.Contains(r.errs, "paired.json: $: not a regular file but a FIFO (named pipe)") {
			t.Fatalf("import of a FIFO = %d %s", r.code, r.errs)
		}
	case <-time.After(20 * time.Second): // a hang, not a speed limit
		t.Fatal("import of a FIFO hangs")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errb bytes.Buffer
	from := fixture.Path(t, "snapshots", "04-after-repair-approve")
	if code := Run(ctx, []string{"import", "--from", from}, getenv, nil, io.Discard, &errb); code == 0 || !strings.Contains(errb.String(), "cancel") {
		t.Fatalf("import with a cancelled context = %d %s", code, errb.String())
	}
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"import", "--from", from, "--dry-run"}, getenv, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "paired:  1 added") {
		t.Fatalf("the cancelled import changed the store: %d %s", code, out.String())
	}
}

// A migration trial: `pairgate export` into a directory holding OpenClaw's
// own files, never imported, replaced them with the profile's, and
// the pairings only they held were gone. It is refused unless --force.
func TestExportKeepsFilesWithPairingsTheProfileLacks(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	if code := Run(context.Background(), []string{"migrate"}, getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatal("migrate failed")
	}
	to := t.TempDir()
	theirs := fixture.Path(t, "snapshots", "06-final", "paired.json")
	want, _ := os.ReadFile(theirs)
	os.WriteFile(filepath.Join(to, "paired.json"), want, 0o600)
	var out, errs bytes.Buffer
	code := Run(context.Background(), []string{"export", "--to", to}, getenv, nil, &out, &errs)
	if code == 0 || !strings.Contains(errs.String(), "holds 1 paired node(s) this profile does not have") || !strings.Contains(errs.String(), "--force") {
		t.Fatalf("export over files with a pairing the profile lacks = %d\n%s%s", code, out.String(), errs.String())
	}
	if got, _ := os.ReadFile(filepath.Join(to, "paired.json")); !bytes.Equal(got, want) {
		t.Fatal("the refused export changed paired.json")
	}
	if code := Run(context.Background(), []string{"export", "--to", to, "--force"}, getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatal("export --force failed")
	}
	if got, _ := os.ReadFile(filepath.Join(to, "paired.json")); string(got) != "{}" {
		t.Fatalf("export --force wrote %q", got)
	}
}

// A trial: `pairgate migrate`, or an import from another directory, made
// the database of a state directory holding OpenClaw's files, and the
// server's first start then skipped importing them. Both are refused
// until the files are imported; `pairgate import` (from nodes/) works.
func TestCommandsKeepTheFirstStartsImport(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	from := fixture.Path(t, "snapshots", "06-final")
	os.MkdirAll(filepath.Join(stateDir, "nodes"), 0o700)
	b, _ := os.ReadFile(filepath.Join(from, "paired.json"))
	os.WriteFile(filepath.Join(stateDir, "nodes", "paired.json"), b, 0o600)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "paired.json"), []byte("{}"), 0o600)
	for _, args := range [][]string{{"migrate"}, {"import", "--from", other}, {"import", "--from", other, "--dry-run"}} {
		var errs bytes.Buffer
		if code := Run(context.Background(), args, getenv, nil, io.Discard, &errs); code == 0 || !strings.Contains(errs.String(), "holds OpenClaw's paired.json and there is no database yet") {
			t.Fatalf("%v = %d %s", args, code, errs.String())
		}
		if _, err := os.Stat(filepath.Join(stateDir, "nodes", "pairing.sqlite")); err == nil {
			t.Fatalf("%v made the database", args)
		}
	}
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"import"}, getenv, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "paired:  1 added") {
		t.Fatalf("import from nodes/ = %d %s", code, out.String())
	}
	if code := Run(context.Background(), []string{"migrate"}, getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatal("migrate after the import failed")
	}
}

// export --redact-tokens without --to blanked every token in the
// profile's own nodes/paired.json, where OpenClaw reads them.
func TestRedactedExportNeedsADirectory(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	if code := Run(context.Background(), []string{"migrate"}, getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatal("migrate failed")
	}
	var errs bytes.Buffer
	if code := Run(context.Background(), []string{"export", "--redact-tokens"}, getenv, nil, io.Discard, &errs); code != exitUsage || !strings.Contains(errs.String(), "--redact-tokens writes every token empty: give --to DIR") {
		t.Fatalf("export --redact-tokens = %d %s", code, errs.String())
	}
	if _, err := os.Stat(filepath.Join(stateDir, "nodes", "paired.json")); err == nil {
		t.Fatal("the refused export wrote paired.json")
	}
}

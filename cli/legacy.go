package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/diskhint"
)

func runImport(ctx context.Context, env Env, args []string) (err error) {
	flags := newFlags(env, "import", "[--from DIR] [--dry-run] [--replace] [--json] [--state-dir DIR | --profile NAME]")
	from := flags.String("from", "", "`directory` holding paired.json and pending.json (default: the profile's nodes/)")
	dryRun := flags.Bool("dry-run", false, "report what would change; change nothing")
	replace := flags.Bool("replace", false, "make the profile exactly what the files say (default: merge)")
	asJSON := flags.Bool("json", false, "print the report as JSON (and a failure as {\"error\":{\"code\",\"message\"}} on stderr)")
	pf := addProfileFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	// With --json, a failure is JSON too, as the nodes commands' are: a
	// script reads its code, not its words (a documentation trial).
	defer func() { err = output{json: *asJSON}.failure(err) }()
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(importMemoryLimit))
	}
	p, err := pf.resolve(env)
	if err != nil {
		return err
	}
	dir := *from
	if dir == "" {
		dir = p.NodesDir()
	}
	st, found, err := db.ReadLegacyDir(dir)
	if err != nil {
		return err
	}
	if found && *replace {
		// A file left out counts as empty: replace would remove every
		// pairing (or pending request) of the profile. (What was read
		// has a digest for each file found.)
		for _, name := range []string{db.PairedFile, db.PendingFile} {
			if _, read := st.SHA256[name]; !read {
				return fmt.Errorf("--replace makes the profile exactly the files, and %s has no %s: it would remove every record of that kind; put both files there (an empty one holds {})", dir, name)
			}
		}
	}
	if !found {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist: --from names the directory holding %s and %s (OpenClaw's is <state dir>/nodes)", dir, db.PairedFile, db.PendingFile)
		}
		if _, err := os.Stat(filepath.Join(dir, "nodes", db.PairedFile)); err == nil {
			return fmt.Errorf("no %s or %s in %s, but %s has them: --from %s", db.PairedFile, db.PendingFile, dir, filepath.Join(dir, "nodes"), filepath.Join(dir, "nodes"))
		}
		return fmt.Errorf("no %s or %s in %s", db.PairedFile, db.PendingFile, dir)
	}
	if !config.SameDir(dir, p.NodesDir()) {
		// A dry run says so too: it reported what the real run refuses.
		if err := keepLegacyImport(p); err != nil {
			return err
		}
	}
	if _, err := os.Stat(p.DatabasePath()); *dryRun && errors.Is(err, fs.ErrNotExist) {
		// A dry run changes nothing, so it creates nothing either: a
		// database it made would stop the server's import at its first
		// start. Without one, the files are tried on a scratch profile.
		scratch, err := os.MkdirTemp("", "pairgate-dry-run-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(scratch)
		p.StateDir, p.KeyFile, p.Replicas = scratch, "", nil
	}
	made := newStateDir(env, p)
	store, closeStore, err := openOffline(ctx, p)
	if err != nil {
		return err
	}
	defer closeStore()
	defer made()
	mode := db.ImportMerge
	if *replace {
		mode = db.ImportReplace
	}
	rep, err := store.Import(ctx, st, mode, *dryRun, db.Origin{Actor: "import", Source: "cli"})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, rep)
	}
	printImportReport(env.Stdout, dir, rep)
	return nil
}

// importMemoryLimit is the import's soft memory limit (unless
// $GOMEMLIMIT sets one). It holds the files and every record they hold at
// once (a 100,000-node paired.json: ~180 MB live at most), and the
// collector, left to its default, let the heap double past that: a trial
// measured 337–378 MB peak RSS, over the 300 MB the specification allows.
// Under the limit it collects sooner: 224 MB, and no slower (8.8 s).
const importMemoryLimit = 200 << 20

func printImportReport(w io.Writer, dir string, rep db.ImportReport) {
	fmt.Fprintf(w, "Import from %s (%s):\n", dir, rep.Mode)
	fmt.Fprintf(w, "  paired:  %d added, %d replaced, %d kept, %d removed\n", rep.PairedAdded, rep.PairedReplaced, rep.PairedKept, rep.PairedRemoved)
	if rep.SkippedRemoved > 0 {
		fmt.Fprintf(w, "  paired:  %d skipped: removed here after the files' approval (--replace brings them back)\n", rep.SkippedRemoved)
	}
	if rep.PendingClosed > 0 {
		fmt.Fprintf(w, "  pending: %d closed as expired: older than their node's imported approval\n", rep.PendingClosed)
	}
	fmt.Fprintf(w, "  pending: %d added, %d unchanged, %d removed (closed as expired); skipped %d expired, %d already known, %d whose node has a pending request, %d older than their node's approval\n",
		rep.PendingAdded, rep.PendingUnchanged, rep.PendingRemoved, rep.SkippedExpired, rep.SkippedKnown, rep.SkippedNodePending, rep.SkippedDecided)
	if len(rep.UnknownFields) > 0 {
		fmt.Fprintf(w, "  fields pairgate does not know, kept for export (%d): %s\n", len(rep.UnknownFields), visible(strings.Join(rep.UnknownFields, ", ")))
	}
	for _, name := range []string{db.PairedFile, db.PendingFile} {
		if sum, ok := rep.SHA256[name]; ok {
			fmt.Fprintf(w, "  %s sha256 %s\n", name, sum)
		}
	}
	switch {
	case rep.DryRun:
		fmt.Fprintln(w, "Dry run: nothing was changed.")
	case !rep.Changed && rep.SkippedExpired+rep.SkippedNodePending+rep.SkippedDecided+rep.SkippedRemoved > 0:
		fmt.Fprintln(w, "Nothing changed: what the profile does not hold was skipped (above).")
	case !rep.Changed:
		fmt.Fprintln(w, "Nothing to change: the profile already holds all of it.")
	}
}

func runExport(ctx context.Context, env Env, args []string) error {
	flags := newFlags(env, "export", "[--to DIR] [--redact-tokens] [--force] [--state-dir DIR | --profile NAME]")
	to := flags.String("to", "", "`directory` to write paired.json and pending.json into (default: the profile's nodes/)")
	redact := flags.Bool("redact-tokens", false, `write every token as ""`)
	force := flags.Bool("force", false, "write over files that hold pairings this profile does not have (they are lost)")
	pf := addProfileFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	p, err := pf.resolve(env)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p.DatabasePath()); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no pairgate database at %s: nothing to export", p.DatabasePath())
	} else if err != nil {
		// Not "no database": one that cannot be looked at (a trial saw a
		// directory of the server's user called empty) is still there.
		return diskhint.Wrap(fmt.Errorf("cannot read the database: %w", err), p.NodesDir())
	}
	dir := *to
	if dir == "" {
		if *redact {
			// OpenClaw reads its tokens from there: every one would be blanked.
			return &usageError{msg: fmt.Sprintf("--redact-tokens writes every token empty: give --to DIR (without it the files go to %s, where OpenClaw reads its tokens)", p.NodesDir())}
		}
		dir = p.NodesDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	store, closeStore, err := openOffline(ctx, p)
	if err != nil && diskhint.Hint(p.NodesDir()) != "" {
		// A state directory this user cannot write (a read-only mount, a
		// backup copy, another user's): its database is read from a
		// private copy, unless a server holds it.
		if *to == "" {
			return fmt.Errorf("%w; to export from a copy of its database instead, give --to DIR", err)
		}
		var copyErr error
		store, closeStore, copyErr = openCopy(ctx, p)
		if copyErr != nil {
			return fmt.Errorf("%w; nor could it be read from a copy: %w", err, copyErr)
		}
		fmt.Fprintf(env.Stderr, "pairgate: %s cannot be written by this user (or is read-only): exported from a copy of its database\n", p.NodesDir())
	} else if err != nil {
		return err
	}
	defer closeStore()
	if !*force {
		if err := store.CheckOverwrite(ctx, dir); err != nil {
			if db.IsDamaged(err) {
				return err // --force cannot read a damaged database either
			}
			return fmt.Errorf("%w; or, to write over them anyway, --force", err)
		}
	}
	rep, err := store.Export(ctx, dir, *redact)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Wrote %s (%d paired) and %s (%d pending) to %s\n", db.PairedFile, rep.Paired, db.PendingFile, rep.Pending, rep.Dir)
	return nil
}

// openCopy opens a private copy of a profile's database (and its WAL),
// for an export from a state directory this user cannot write: the store
// cannot be opened there (its lock and WAL files are written). A server
// holding the state directory refuses it: its database changes under the
// copy. The copy is migrated if it is older, and removed when closed.
func openCopy(ctx context.Context, p config.Profile) (*db.Store, func(), error) {
	if lock, err := os.Open(p.LockPath()); err == nil {
		defer lock.Close()
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
			return nil, nil, fmt.Errorf("%s is served by a running server: export it over REST (GET …/export), or as the server's user", p.StateDir)
		}
	}
	tmp, err := os.MkdirTemp("", "pairgate-export-")
	if err != nil {
		return nil, nil, err
	}
	cp := config.NewProfile(p.Name, tmp)
	cp.KeyFile, cp.TTL, cp.MaxPending = p.KeyPath(), p.TTL, p.MaxPending
	if err := cp.EnsureNodesDir(); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(p.DatabasePath()+suffix, cp.DatabasePath()+suffix); err != nil && !(suffix != "" && errors.Is(err, fs.ErrNotExist)) {
			os.RemoveAll(tmp)
			return nil, nil, err
		}
	}
	opts := db.OptionsFor(cp)
	opts.Migrate = true
	store, err := db.Open(ctx, opts)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	return store, func() { store.Close(); os.RemoveAll(tmp) }, nil
}

// copyFile copies from to a new file to (0600).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// keepLegacyImport refuses to create the database of a state directory
// whose nodes/ holds OpenClaw's files: the server imports them at its
// first start only while there is no database, so a database made by
// another command first (migrate, an import from elsewhere) would leave
// them out for good.
func keepLegacyImport(p config.Profile) error {
	if _, err := os.Stat(p.DatabasePath()); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, name := range []string{db.PairedFile, db.PendingFile} {
		if _, err := os.Stat(filepath.Join(p.NodesDir(), name)); err == nil {
			return fmt.Errorf("%s holds OpenClaw's %s and there is no database yet: `pairgate serve` imports the files at its first start, or `pairgate import` (its --from defaults to that directory) does now; made by this command first, the database would leave them out", p.NodesDir(), name)
		}
	}
	return nil
}

// openOffline opens a profile's store from the command line, safe beside
// a running server: without the server it takes the state-directory lock
// (and may migrate); with one, it shares the database, whose schema the
// server keeps current.
func openOffline(ctx context.Context, p config.Profile) (*db.Store, func(), error) {
	store, closeStore, err := openOfflineIn(ctx, p)
	if err != nil {
		// A read-only or full filesystem, or a directory of another user
		// (a command run as root beside a server that is not): say which.
		return nil, nil, diskhint.Wrap(err, p.NodesDir())
	}
	return store, closeStore, nil
}

func openOfflineIn(ctx context.Context, p config.Profile) (*db.Store, func(), error) {
	if err := p.EnsureNodesDir(); err != nil {
		return nil, nil, err
	}
	opts := db.OptionsFor(p)
	lock, err := db.LockStateDir(p.LockPath())
	switch {
	case errors.Is(err, db.ErrLocked):
		lock = nil
	case err != nil:
		return nil, nil, err
	default:
		opts.Migrate = true
	}
	store, err := db.Open(ctx, opts)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	return store, func() { store.Close(); lock.Release() }, nil
}

// printJSON writes v as indented JSON with every hidden character escaped.
func printJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(escapeHidden(b.Bytes()))
	return err
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db/replica"
)

// runRestore writes a profile's database from its replica into a state
// directory that has none: a new host taking over a profile, or a host
// whose disk was lost. The key never travels with the replica.
func runRestore(ctx context.Context, env Env, args []string) (err error) {
	flags := newFlags(env, "restore", "(--state-dir DIR --from URL | --profile NAME [--from URL]) [--timestamp T]")
	from := flags.String("from", "", "replica `URL` (s3://bucket/path?endpoint=…, file:///dir); default: the profile's replica in $PAIRGATE_CONFIG")
	at := flags.String("timestamp", "", "restore the state as of this `time` (RFC 3339, e.g. 2026-12-01T10:00:00Z); default: the newest")
	pf := addProfileFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	var asOf time.Time
	if *at != "" {
		var err error
		if asOf, err = time.Parse(time.RFC3339, *at); err != nil {
			return &usageError{msg: fmt.Sprintf("restore: --timestamp %q is not an RFC 3339 time; write e.g. --timestamp 2026-12-01T10:00:00Z", *at)}
		}
		if now := time.Now(); asOf.After(now) {
			// It restored the newest state, and called it a point in time.
			return &usageError{msg: fmt.Sprintf("restore: --timestamp %s is in the future (it is %s now): leave --timestamp out to restore the newest state", *at, now.UTC().Format(time.RFC3339))}
		}
	}
	p, err := pf.resolve(env)
	if err != nil {
		return err
	}
	url := *from
	if url == "" && p.Replicated() {
		url = p.Replicas[0].URL
	}
	if url == "" {
		return &usageError{msg: "restore: no replica: give --from URL, or --profile NAME of a profile with replicas in $PAIRGATE_CONFIG"}
	}
	shown := config.Replica{URL: url}
	if err := shown.CheckFlag(); err != nil {
		return &usageError{msg: "restore: --from: " + err.Error()}
	}
	if dir, ok := shown.FileDir(); ok {
		// Litestream reads a missing directory as an empty replica.
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: %s does not exist: is the path the one the old host replicated to (its replicas url)?", dir)
		}
	}
	_, statErr := os.Stat(p.NodesDir())
	madeNodes := errors.Is(statErr, fs.ErrNotExist)
	if err := p.EnsureNodesDir(); err != nil {
		return err
	}
	lock, err := lockStateDir(p, "a served database is never restored over: stop that server, and restore into a state directory without a database")
	if err != nil {
		return err
	}
	defer func() {
		lock.Release()
		if err != nil && madeNodes {
			// A failed restore leaves no state directory it made: only
			// its lock file is in it (Restore writes the database last).
			os.Remove(p.LockPath())
			os.Remove(p.NodesDir())
			os.Remove(p.StateDir) // only if empty: it may have held other files
		}
	}()
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	err = replica.Restore(ctx, url, p.DatabasePath(), asOf, log)
	if errors.Is(err, replica.ErrNoBackup) && !asOf.IsZero() {
		return fmt.Errorf("%s holds no backup of a database as of %s: give a later --timestamp, or none for the newest (is the URL the one the old host replicated to?)", shown.RedactedURL(), asOf.Format(time.RFC3339))
	}
	if errors.Is(err, replica.ErrNoBackup) {
		return fmt.Errorf("%s holds no backup of a database (is the URL the one the old host replicated to?)", shown.RedactedURL())
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Restored %s from %s.\n", p.DatabasePath(), shown.RedactedURL())
	if _, err := os.Stat(p.KeyPath()); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(env.Stdout, "The key is not in the replica: copy the profile's pairing.key from the old host (or where you keep it) to %s before `pairgate serve`, which refuses a missing or wrong key.\n", p.KeyPath())
	} else {
		fmt.Fprintf(env.Stdout, "`pairgate serve` checks at start that %s opens this database's tokens.\n", p.KeyPath())
	}
	if !asOf.IsZero() {
		fmt.Fprintln(env.Stdout, "This is a point-in-time restore: replicate the profile to a new replica path, not to the one restored from, whose history runs past this point.")
	}
	return nil
}

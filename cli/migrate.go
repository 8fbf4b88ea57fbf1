package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/diskhint"
	"github.com/pairgate/pairgate/migrations"
)

// profileFlags are the flags that choose a profile's state directory.
type profileFlags struct {
	stateDir *string
	name     *string
}

func addProfileFlags(fs *flag.FlagSet) profileFlags {
	return profileFlags{
		stateDir: fs.String("state-dir", "", "the profile's state `directory` (wins over $OPENCLAW_STATE_DIR; not with --profile)"),
		name:     fs.String("profile", "", "profile `name`: the server's profile of that name (in $PAIRGATE_CONFIG), else state directory ~/.openclaw-NAME; without it or --state-dir, $PAIRGATE_CONFIG's profile default"),
	}
}

// resolve picks the profile the flags and environment choose (resolveAs).
func (f profileFlags) resolve(env Env) (config.Profile, error) {
	return f.resolveAs(env, *f.name)
}

// resolveAs picks the profile named name (--profile, or a /ws/NAME URL),
// else the one --state-dir, $OPENCLAW_STATE_DIR or the default state
// directory holds. The configuration file ($PAIRGATE_CONFIG), when it
// declares that name or directory, gives the profile (its state
// directory, token, limits); with no directory chosen, its profile
// "default". Otherwise the profile is that directory with the defaults.
// A name and --state-dir together are refused: both choose the profile,
// and one of them would be ignored.
func (f profileFlags) resolveAs(env Env, name string) (config.Profile, error) {
	if name != "" && *f.stateDir != "" {
		return config.Profile{}, &usageError{msg: fmt.Sprintf("--state-dir %s and the profile %q both choose the profile: give one of them", *f.stateDir, name)}
	}
	dir := config.ResolveStateDir(*f.stateDir, name, env.Getenv)
	// A relative --state-dir is the same directory as a configuration's
	// absolute stateDir: compared as given, the configuration's profile
	// (its ttl, its keyFile) was missed and defaults applied.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p := config.NewProfile(cmp.Or(name, config.DefaultProfile), dir)
	path := env.Getenv("PAIRGATE_CONFIG")
	if path == "" {
		return p, nil
	}
	cfg, err := config.Load(path, env.Getenv)
	if err != nil {
		return p, err
	}
	for _, c := range cfg.Profiles {
		if name != "" && c.Name == name || name == "" && config.SameDir(c.StateDir, p.StateDir) {
			return c, nil
		}
	}
	names := make([]string, len(cfg.Profiles))
	for i, c := range cfg.Profiles {
		names[i] = c.Name
	}
	if name != "" {
		// Most likely a typo: ~/.openclaw-NAME is not what a user of a
		// configuration means.
		return p, fmt.Errorf("$PAIRGATE_CONFIG (%s) has no profile %q; it has %s (a directory it does not list: --state-dir DIR)", path, name, strings.Join(names, ", "))
	}
	if *f.stateDir != "" || env.Getenv("OPENCLAW_STATE_DIR") != "" {
		return p, nil
	}
	// Nothing chosen: the profile the server's "/" serves, its "default",
	// else its only one. An outside trial: a configuration without
	// "default" sent export, import and migrate to ~/.openclaw, a
	// directory it does not list, in silence.
	for _, c := range cfg.Profiles {
		if c.Name == config.DefaultProfile {
			return c, nil
		}
	}
	if len(cfg.Profiles) == 1 {
		return cfg.Profiles[0], nil
	}
	return p, fmt.Errorf("$PAIRGATE_CONFIG (%s) has no profile %q, and several others: choose one with --profile NAME (%s), or a directory with --state-dir DIR", path, config.DefaultProfile, strings.Join(names, ", "))
}

func runMigrate(ctx context.Context, env Env, args []string) error {
	flags := newFlags(env, "migrate", "[--status] [--state-dir DIR | --profile NAME]")
	status := flags.Bool("status", false, "show the migrations and which are applied; change nothing")
	pf := addProfileFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	p, err := pf.resolve(env)
	if err != nil {
		return err
	}
	if *status {
		// What serve would refuse as a lost database, said as serve does.
		if err := db.CheckBesideKey(db.OptionsFor(p)); err != nil {
			return err
		}
	}
	if _, err := os.Stat(p.DatabasePath()); errors.Is(err, fs.ErrNotExist) && *status {
		fmt.Fprintf(env.Stdout, "No database at %s yet; `pairgate serve` creates it (importing OpenClaw's files in nodes/, if any), as does `pairgate migrate` where there are none.\n", p.DatabasePath())
		return nil
	}
	if *status {
		// The version table alone says nothing of damage elsewhere (a
		// re-trial: "applied" on a database serve refuses).
		if err := db.QuickCheckFile(ctx, p.DatabasePath()); err != nil {
			return err
		}
		return diskhint.Wrap(printMigrations(ctx, env, p), p.NodesDir())
	}
	if err := keepLegacyImport(p); err != nil {
		return err
	}
	made := newStateDir(env, p)
	if err := p.EnsureNodesDir(); err != nil {
		return err
	}
	defer made()
	var before int64 // the schema version found: 0 for no database
	if _, err := os.Stat(p.DatabasePath()); err == nil {
		migs, err := db.Migrations(ctx, p.DatabasePath())
		if err != nil && !errors.Is(err, db.ErrSchemaTooNew) {
			return err
		}
		for _, m := range migs {
			if m.Applied {
				before = max(before, m.Version)
			}
		}
	}
	// Only the lock holder migrates; a running server already did at start.
	if err := openLocked(ctx, p, "a running server applies migrations itself when it starts; `pairgate migrate --status` shows them", nil); err != nil {
		return err
	}
	if err := printMigrations(ctx, env, p); err != nil {
		return err
	}
	latest := migrations.Latest()
	switch {
	case before == latest:
		fmt.Fprintf(env.Stdout, "Already at schema %d: nothing to migrate.\n", latest)
	case before == 0:
		fmt.Fprintf(env.Stdout, "Created the database at schema %d.\n", latest)
	default:
		fmt.Fprintf(env.Stdout, "Migrated from schema %d to %d. The database as it was is in %s, for the pairgate before (the README's Upgrading).\n", before, latest, db.BackupPath(p.DatabasePath(), before))
	}
	return nil
}

// newStateDir is for a command about to make the profile's state
// directory, if it does not exist: the func it returns says so on stderr.
// An outside trial: `import --profile NAME` without $PAIRGATE_CONFIG
// filled a new ~/.openclaw-NAME, which no server reads, in silence; serve
// warns of the same.
func newStateDir(env Env, p config.Profile) func() {
	if _, err := os.Stat(p.StateDir); !errors.Is(err, fs.ErrNotExist) {
		return func() {}
	}
	return func() {
		if _, err := os.Stat(p.StateDir); err != nil {
			return // not made after all
		}
		fmt.Fprintf(env.Stderr, "pairgate: made the state directory %s, which did not exist: no server serves it yet. If you meant a profile that is elsewhere, check --profile (without $PAIRGATE_CONFIG, --profile NAME is ~/.openclaw-NAME), --state-dir and $OPENCLAW_STATE_DIR.\n", p.StateDir)
	}
}

// lockStateDir takes a profile's state-directory lock; busy explains a
// lock held by a server.
func lockStateDir(p config.Profile, busy string) (*db.StateLock, error) {
	lock, err := db.LockStateDir(p.LockPath())
	if errors.Is(err, db.ErrLocked) {
		return nil, fmt.Errorf("%w\n(%s)", err, busy)
	}
	return lock, err
}

// openLocked opens a profile's store as the holder of its state-directory
// lock, migrating it, and closes it again. busy explains a lock held by a
// server; option, when set, adjusts the options.
func openLocked(ctx context.Context, p config.Profile, busy string, option func(*db.Options)) error {
	lock, err := lockStateDir(p, busy)
	if err != nil {
		return err
	}
	defer lock.Release()
	opts := db.OptionsFor(p)
	opts.Migrate = true
	if option != nil {
		option(&opts)
	}
	s, err := db.Open(ctx, opts)
	if err != nil {
		return err
	}
	return s.Close()
}

func printMigrations(ctx context.Context, env Env, p config.Profile) (err error) {
	migs, err := db.Migrations(ctx, p.DatabasePath())
	if err != nil && !errors.Is(err, db.ErrSchemaTooNew) {
		return err
	}
	defer func() {
		if err != nil {
			fmt.Fprintln(env.Stdout, "  …and newer ones this pairgate does not know")
		}
	}()
	fmt.Fprintf(env.Stdout, "Database: %s\n", p.DatabasePath())
	for _, m := range migs {
		state := "pending"
		if m.Applied {
			state = "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(env.Stdout, "  %05d  %-28s %s\n", m.Version, m.File, state)
	}
	return err
}

// Package cli is pairgate's command line: the server's start-up wiring and
// the operator's commands. main only hands it the process's surroundings.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/migrations"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	// exitConfig (EX_CONFIG) is for bad configuration, for a database
	// whose schema is newer than this binary, and for a state directory
	// whose files do not belong together (db.ErrIntegrity) or is damaged
	// (db.IsDamaged): restarting mends none of them.
	exitConfig = 78
)

// Version is the release, set at build time with
// -ldflags "-X github.com/pairgate/pairgate/cli.Version=v1.2.3".
var Version = ""

// Env is what a command may touch of its process.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the pairing server for every configured profile", runServe},
		{"nodes", "pending | list | status | describe | approve | reject | rename | remove", runNodes},
		{"profiles", "list the profiles a running server serves for your token", runProfiles},
		{"webhooks", "list | redeliver: a profile's webhook endpoints and their delivery", runWebhooks},
		{"import", "import legacy paired.json / pending.json into a profile", runImport},
		{"export", "write a profile's legacy paired.json / pending.json", runExport},
		{"migrate", "apply (or with --status, show) database migrations of a profile", runMigrate},
		{"new-key", "make a new pairing.key for a profile whose key is lost", runNewKey},
		{"restore", "restore a profile's database from its replica (Litestream)", runRestore},
		{"health", "ask a running server whether it is ready", runHealth},
		{"version", "print the version", runVersion},
	}
}

// Run runs the command line args (without the program name) and returns
// the process exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if len(args) > 1 && args[0] == "help" {
		// pairgate help nodes [approve] is pairgate nodes [approve] --help.
		args = append(slices.Clone(args[1:]), "--help")
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(env, c.run(ctx, env, args[1:]))
		}
	}
	fmt.Fprintf(env.Stderr, "pairgate: unknown command %q; run 'pairgate help' for the list\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "pairgate — node pairing server for OpenClaw-style gateways")
	fmt.Fprintln(w, "\nUsage: pairgate <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'pairgate <command> --help' for a command's flags.")
	fmt.Fprintln(w, "\nExamples:\n  pairgate serve\n  pairgate nodes pending\n  pairgate nodes approve <requestId>\n  pairgate serve --config pairgate.yaml --listen 127.0.0.1:18789\n  pairgate import --from ~/old-gateway/nodes --dry-run\n  pairgate export --profile work --to /tmp/backup\n  pairgate migrate --status --profile work")
}

// usageError marks a mistake in the command line itself (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func exitCode(env Env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var failure *commandError
	var asJSON *jsonFailure
	// Errors may quote node data (ids, names, legacy file keys); a
	// report's own lines stay lines.
	msg := visibleLines(err.Error())
	if errors.As(err, &asJSON) {
		asJSON.write(env.Stderr)
	} else if errors.As(err, &failure) {
		fmt.Fprintln(env.Stderr, msg) // "nodes approve failed: …", as OpenClaw prints it
	} else {
		fmt.Fprintln(env.Stderr, "pairgate: "+msg)
	}
	var ue *usageError
	var ce *config.Error
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce), errors.Is(err, db.ErrSchemaTooNew), errors.Is(err, db.ErrIntegrity), db.IsDamaged(err):
		return exitConfig
	}
	return exitFailed
}

// examples are shown by 'pairgate <command> --help'.
var examples = map[string]string{
	"serve":              "pairgate serve\n  pairgate serve --config pairgate.yaml\n  PAIRGATE_LISTEN=0.0.0.0:18789 pairgate serve",
	"import":             "pairgate import --from ~/.openclaw/nodes --dry-run\n  pairgate import --from /backup/nodes --replace --profile work",
	"export":             "pairgate export --to /tmp/nodes-backup\n  pairgate export --redact-tokens --profile work",
	"migrate":            "pairgate migrate --status\n  pairgate migrate --state-dir /srv/gateway",
	"new-key":            "pairgate new-key --profile work",
	"restore":            "pairgate restore --profile work\n  pairgate restore --state-dir /var/lib/pairgate/work --from s3://backups/pairgate/work?endpoint=https://s3.example\n  pairgate restore --state-dir /tmp/yesterday --from file:///backups/work --timestamp 2026-12-01T10:00:00Z",
	"health":             "pairgate health\n  pairgate health --url http://127.0.0.1:18790",
	"version":            "pairgate version",
	"profiles":           "pairgate profiles\n  pairgate profiles --json --token \"$TOKEN\"",
	"nodes pending":      "pairgate nodes pending\n  pairgate nodes pending --json --profile work",
	"nodes list":         "pairgate nodes list",
	"nodes status":       "pairgate nodes status\n  OPENCLAW_STATE_DIR=/srv/gw2 pairgate nodes status --json",
	"nodes describe":     "pairgate nodes describe --node \"kitchen ipad\"",
	"nodes approve":      "pairgate nodes approve 9b5a87a6-4780-4b92-a6ba-f2b617fdd92a",
	"nodes reject":       "pairgate nodes reject 6da54dff-b3b1-429f-bd56-c74c92bfdac1",
	"nodes rename":       "pairgate nodes rename --node 88a48a --name \"Den iPad\"",
	"nodes remove":       "pairgate nodes remove --node \"Den iPad\"",
	"webhooks list":      "pairgate webhooks list\n  pairgate webhooks list --json --profile work",
	"webhooks redeliver": "pairgate webhooks redeliver wh_3551a7ff58\n  pairgate webhooks redeliver wh_3551a7ff58 --from 120 --profile work",
}

// newFlags returns a flag set that reports errors instead of exiting. Its
// Usage prints the command's help (flags written --name, as the docs
// write them) to the flag set's output.
func newFlags(env Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stdout) // only the help asked for is printed there
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: pairgate %s\n", strings.TrimSpace(name+" "+synopsis))
		heading := "\nFlags:\n" // none for a command that takes no flags
		fs.VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			if arg != "" {
				arg = " " + arg
			}
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(usage, "default") {
				usage += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(w, "%s  --%s%s\n    \t%s\n", heading, f.Name, arg, usage)
			heading = ""
		})
		if ex, ok := examples[name]; ok {
			fmt.Fprintf(w, "\nExamples:\n  %s\n", ex)
		}
	}
	return fs
}

// parseFlags parses args, refusing positional arguments the command does not take.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// parseFlagsOnly parses the flags in args. The flag package prints a
// parse error and the whole help itself; here the error is returned (and
// printed once, with a pointer to --help), and the help is printed only
// when asked for.
func parseFlagsOnly(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return &usageError{msg: fmt.Sprintf("%s: %v; run 'pairgate %s --help'", fs.Name(), err, fs.Name())}
	}
	return nil
}

func runVersion(_ context.Context, env Env, args []string) error {
	fs := newFlags(env, "version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The schema version tells which databases this build serves: an
	// older pairgate refuses one a newer migrated ("schema version 9,
	// this pairgate knows versions up to 8").
	build := runtime.Version()
	if rev := revision(); rev != "" {
		build += ", commit " + rev
	}
	fmt.Fprintf(env.Stdout, "pairgate %s (%s, database schema %d)\n", version(), build, migrations.Latest())
	return nil
}

// revision is the commit the binary was built from, when go build
// recorded it (a build from a git checkout).
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+changes"
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

// version is the -ldflags version, else the module version, else "dev".
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "dev"
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/client"
)

// subcommand is one command of a group of server commands (pairgate
// nodes …, pairgate webhooks …). Each declares exactly its own flags;
// the group adds the flags that reach the server.
type subcommand interface {
	// declare adds the command's own flags to fs.
	declare(fs *flag.FlagSet)
	// check takes the positional arguments and checks the flags' values;
	// its error is a usage error, worded without the command's name.
	check(args []string) error
	// run acts on the connected profile and prints to out.
	run(ctx context.Context, c *conn, out output) error
}

// output is where and how a subcommand prints.
type output struct {
	w     io.Writer
	json  bool
	width int
	now   time.Time
}

// print writes v as JSON with --json, else what text writes.
func (out output) print(v any, text func()) error {
	if out.json {
		return printJSON(out.w, v)
	}
	text()
	return nil
}

// subcommandEntry names a subcommand in its group's table.
type subcommandEntry struct {
	name     string
	synopsis string // the command's own arguments and flags, for --help
	summary  string
	new      func() subcommand
}

// group is a command made of subcommands.
type group struct {
	name     string
	commands []subcommandEntry
	usage    func(w io.Writer, commands []subcommandEntry)
}

// clientSynopsis is what every subcommand takes beside its own.
const clientSynopsis = " [--url URL] [--token TOKEN | --token-file FILE] [--state-dir DIR | --profile NAME] [--timeout 30s]"

func (g group) run(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		g.usage(env.Stdout, g.commands)
		if len(args) == 0 {
			return &usageError{msg: fmt.Sprintf("%s: which command? (%s)", g.name, strings.Join(g.names(), ", "))}
		}
		return nil
	}
	i := slices.IndexFunc(g.commands, func(c subcommandEntry) bool { return c.name == args[0] })
	if i < 0 {
		return &usageError{msg: fmt.Sprintf("%s: unknown command %q; run 'pairgate %s --help'", g.name, args[0], g.name)}
	}
	entry, cmd := g.commands[i], g.commands[i].new()
	name := g.name + " " + entry.name
	fs := newFlags(env, name, entry.synopsis+clientSynopsis)
	cf := addClientFlags(fs)
	cmd.declare(fs)
	positional, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if err := cmd.check(positional); err != nil {
		return &usageError{msg: name + ": " + err.Error()}
	}
	out := output{w: env.Stdout, json: *cf.json, width: terminalWidth(env, env.Stdout), now: time.Now()}
	c, err := cf.connect(ctx, env)
	if err != nil {
		return out.failure(failed(name, err))
	}
	if r, ok := cmd.(readOnly); ok {
		c.reads = r.readOnly()
	}
	return out.failure(failed(name, c.explain(ctx, cmd.run(ctx, c, out))))
}

// failure returns err, the command's failure as worded for the operator;
// with --json it is written on stderr as the REST API answers one,
// {"error":{"code","message"}}, instead of as a line, the code from what
// failed under the words, so a script can tell "already approved"
// (conflict) from "no such request" (not_found) without reading them
// (an operator trial). stdout stays empty on a failure, as OpenClaw's
// own CLI leaves it (a re-trial: `… --json | jq '.[]'` must not find an
// error object where it expects the list).
func (o output) failure(err error) error {
	if err == nil || !o.json {
		return err
	}
	var code db.Code
	switch {
	case client.IsUnreachable(err):
		code = "unreachable"
	case client.IsTimeout(err):
		code = db.CodeTimeout
	case client.IsInterrupted(err):
		code = "interrupted"
	default:
		code = db.ErrorCode(err)
	}
	return &jsonFailure{err: err, code: code}
}

// jsonFailure is a failure Run writes on stderr as JSON.
type jsonFailure struct {
	err  error
	code db.Code
}

func (f *jsonFailure) Error() string { return f.err.Error() }
func (f *jsonFailure) Unwrap() error { return f.err }

// write writes the failure as {"error":{"code","message"}}.
func (f *jsonFailure) write(w io.Writer) {
	type failure struct {
		Code    db.Code `json:"code"`
		Message string  `json:"message"`
	}
	printJSON(w, map[string]failure{"error": {Code: f.code, Message: f.err.Error()}})
}

func (g group) names() []string {
	names := make([]string, len(g.commands))
	for i, c := range g.commands {
		names[i] = c.name
	}
	return names
}

// listing is the part of a subcommand that takes no flags and no
// arguments of its own (the commands that list).
type listing struct{}

func (listing) declare(*flag.FlagSet)     {}
func (listing) check(args []string) error { return noArgs(args) }
func (listing) readOnly() bool            { return true }

// readOnly is a subcommand that changes nothing: a call of it that times
// out is said so (conn.explain).
type readOnly interface{ readOnly() bool }

// noArgs is the check of a subcommand that takes no positional argument.
func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (pairgate nodes approve ID --json).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlagsOnly(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// webhooksCommands is pairgate webhooks: a profile's webhook endpoints
// and their delivery.
var webhooksCommands = group{name: "webhooks", usage: webhooksUsage, commands: []subcommandEntry{
	{"list", "[--json]", "each endpoint, its state and lag", func() subcommand { return &webhooksListCommand{} }},
	{"redeliver", "ID [--from SEQ] [--json]", "resume an endpoint", func() subcommand { return &redeliverCommand{} }},
}}

func runWebhooks(ctx context.Context, env Env, args []string) error {
	return webhooksCommands.run(ctx, env, args)
}

func webhooksUsage(w io.Writer, _ []subcommandEntry) {
	fmt.Fprintln(w, `Usage: pairgate webhooks <command> [flags]

Webhook endpoints of a profile on a running server (configured under
webhooks: in the profile's configuration).

Commands:
  list       each endpoint, its state (delivering, retrying, dead) and lag
  redeliver  ID [--from SEQ]: resume an endpoint (out of backoff or dead
             letter), at event SEQ or after its cursor

Both take --json, --url, --token, --token-file, --profile, --state-dir
and --timeout as the nodes commands do.

Examples:
  pairgate webhooks list
  pairgate webhooks redeliver wh_3551a7ff58
  pairgate webhooks redeliver wh_3551a7ff58 --from 120 --profile work`)
}

// webhooksListCommand is pairgate webhooks list.
type webhooksListCommand struct{ listing }

func (webhooksListCommand) run(ctx context.Context, c *conn, out output) error {
	hooks, err := c.api.Webhooks(ctx, c.profile)
	if err != nil {
		return err
	}
	return out.print(hooks, func() {
		if len(hooks) == 0 {
			fmt.Fprintf(out.w, "No webhooks in profile %s.\n", c.profile)
			return
		}
		rows := make([][]string, len(hooks))
		for i, w := range hooks {
			events := "all"
			if len(w.Events) > 0 {
				events = strings.Join(w.Events, ", ")
			}
			rows[i] = []string{w.ID, w.URL, events, w.State, strconv.FormatInt(w.Cursor, 10), strconv.FormatInt(w.Lag, 10), strconv.Itoa(w.Attempts), w.LastError}
		}
		table(out.w, out.width, []string{"ID", "URL", "Events", "State", "Cursor", "Lag", "Attempts", "Last error"}, rows)
		for _, w := range hooks {
			if w.Undelivered > 0 {
				what := fmt.Sprintf("%d events were", w.Undelivered)
				if w.Undelivered == 1 {
					what = "1 event was"
				}
				fmt.Fprintf(out.w, "%s fell behind retention.events: %s pruned before delivery and will never be sent (counted since the server started).\n", w.ID, what)
			}
		}
	})
}

// redeliverCommand is pairgate webhooks redeliver ID [--from SEQ].
type redeliverCommand struct {
	id   string
	from seqFlag
}

// seqFlag is an event seq flag that knows whether it was given: 0 given
// is refused, not taken for "not given".
type seqFlag struct {
	v   int64
	set bool
}

func (f *seqFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatInt(f.v, 10)
}

func (f *seqFlag) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not a whole number")
	}
	f.v, f.set = v, true
	return nil
}

func (cmd *redeliverCommand) declare(fs *flag.FlagSet) {
	fs.Var(&cmd.from, "from", "resume at this event `seq` (default: after the endpoint's cursor)")
}

func (cmd *redeliverCommand) check(args []string) error {
	switch {
	case len(args) != 1:
		return errors.New("give exactly one webhook id (see pairgate webhooks list)")
	case cmd.from.set && cmd.from.v < 1:
		return errors.New("--from must be an event seq ≥ 1")
	}
	cmd.id = args[0]
	return nil
}

func (cmd *redeliverCommand) run(ctx context.Context, c *conn, out output) error {
	st, err := c.api.Redeliver(ctx, c.profile, cmd.id, cmd.from.v)
	if err != nil {
		return err
	}
	return out.print(st, func() {
		if cmd.from.set && st.Cursor+1 > cmd.from.v {
			fmt.Fprintf(out.w, "No event from %d to %d is kept (retention.events prunes old ones).\n", cmd.from.v, st.Cursor)
		}
		fmt.Fprintf(out.w, "Webhook %s resumes with event %d (%d behind).\n", st.ID, st.Cursor+1, st.Lag)
	})
}

package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pairgate/pairgate/server/webhook"
)

func webhooksUsage(w io.Writer) {
	fmt.Fprintln(w, `Usage: pairgate webhooks <command> [flags]

Webhook endpoints of a profile on a running server (configured under
webhooks: in the profile's configuration).

Commands:
  list       each endpoint, its state (delivering, retrying, dead) and lag
  redeliver  ID [--from SEQ]: resume an endpoint (out of backoff or dead
             letter), at event SEQ or after its cursor

Both take --json, --url, --token, --profile and --state-dir as the nodes
commands do.

Examples:
  pairgate webhooks list
  pairgate webhooks redeliver wh_3551a7ff58
  pairgate webhooks redeliver wh_3551a7ff58 --from 120 --profile work`)
}

func runWebhooks(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		webhooksUsage(env.Stdout)
		if len(args) == 0 {
			return &usageError{msg: "webhooks: which command? (list, redeliver)"}
		}
		return nil
	}
	name := args[0]
	if name != "list" && name != "redeliver" {
		return &usageError{msg: fmt.Sprintf("webhooks: unknown command %q; run 'pairgate webhooks --help'", name)}
	}
	synopsis := "[--json]"
	if name == "redeliver" {
		synopsis = "ID [--from SEQ] [--json]"
	}
	fs := newFlags(env, "webhooks "+name, synopsis+" [--url URL] [--token TOKEN] [--state-dir DIR | --profile NAME]")
	cf := addClientFlags(fs)
	var from int64
	if name == "redeliver" {
		fs.Int64Var(&from, "from", 0, "resume at this event `seq` (default: after the endpoint's cursor)")
	}
	positional, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case name == "redeliver" && len(positional) != 1:
		return &usageError{msg: "webhooks redeliver: give exactly one webhook id (see pairgate webhooks list)"}
	case name == "list" && len(positional) > 0:
		return &usageError{msg: fmt.Sprintf("webhooks list: unexpected argument %q", positional[0])}
	case from < 0:
		return &usageError{msg: "webhooks redeliver: --from must be an event seq ≥ 1"}
	}
	c, err := cf.connect(ctx, env)
	if err != nil {
		return failed("webhooks "+name, err)
	}
	if name == "list" {
		return failed("webhooks list", listWebhooks(ctx, c, env, *cf.json))
	}
	return failed("webhooks redeliver", redeliverWebhook(ctx, c, env, positional[0], from, *cf.json))
}

func listWebhooks(ctx context.Context, c *client, env Env, asJSON bool) error {
	var res struct {
		Webhooks []webhook.State `json:"webhooks"`
	}
	if err := c.do(ctx, http.MethodGet, "webhooks", nil, &res); err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.Stdout, res.Webhooks)
	}
	if len(res.Webhooks) == 0 {
		fmt.Fprintf(env.Stdout, "No webhooks in profile %s.\n", c.profile)
		return nil
	}
	rows := make([][]string, len(res.Webhooks))
	for i, w := range res.Webhooks {
		events := "all"
		if len(w.Events) > 0 {
			events = strings.Join(w.Events, ", ")
		}
		rows[i] = []string{w.ID, w.URL, events, w.State, strconv.FormatInt(w.Cursor, 10), strconv.FormatInt(w.Lag, 10), strconv.Itoa(w.Attempts), w.LastError}
	}
	table(env.Stdout, terminalWidth(env, env.Stdout), []string{"ID", "URL", "Events", "State", "Cursor", "Lag", "Attempts", "Last error"}, rows)
	return nil
}

func redeliverWebhook(ctx context.Context, c *client, env Env, id string, from int64, asJSON bool) error {
	path := "webhooks/" + url.PathEscape(id) + "/redeliver"
	if from > 0 {
		path += "?from=" + strconv.FormatInt(from, 10)
	}
	var st webhook.State
	if err := c.do(ctx, http.MethodPost, path, nil, &st); err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.Stdout, st)
	}
	fmt.Fprintf(env.Stdout, "Webhook %s resumes with event %d (%d behind).\n", st.ID, st.Cursor+1, st.Lag)
	return nil
}

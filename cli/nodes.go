package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/pairgate/pairgate/db"
)

// The server's node list, as the REST API returns it.
type (
	nodeEntry = db.NodeEntry
	nodeList  = db.NodeList
)

type nodesCommand struct {
	name, synopsis, summary string
	// positional is the name of the one positional argument, if any.
	positional string
	run        func(ctx context.Context, c *client, env Env, o nodesOptions) error
}

// nodesOptions are what a nodes subcommand was given.
type nodesOptions struct {
	arg        string
	node, name string
	json       bool
	width      int
	now        time.Time
}

var nodesCommands = []nodesCommand{
	{"pending", "[--json]", "list pending pairing requests", "", runPending},
	{"list", "[--json]", "list pending and paired nodes", "", runList},
	{"status", "[--json]", "list known nodes with connection status and capabilities", "", runStatus},
	{"describe", "--node ID|NAME [--json]", "describe one node", "", runDescribe},
	{"approve", "REQUEST_ID", "approve a pending pairing request (prints the node's new token once)", "requestId", runDecide("approve")},
	{"reject", "REQUEST_ID", "reject a pending pairing request", "requestId", runDecide("reject")},
	{"rename", "--node ID|NAME --name NAME [--json]", "rename a paired node (kept across repairs)", "", runRename},
	{"remove", "--node ID|NAME [--json]", "remove a pairing: its token stops working at once", "", runRemove},
}

func runNodes(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		nodesUsage(env.Stdout)
		if len(args) == 0 {
			return &usageError{msg: "nodes: which command? (pending, list, status, describe, approve, reject, rename, remove)"}
		}
		return nil
	}
	i := slices.IndexFunc(nodesCommands, func(c nodesCommand) bool { return c.name == args[0] })
	if i < 0 {
		return &usageError{msg: fmt.Sprintf("nodes: unknown command %q; run 'pairgate nodes --help'", args[0])}
	}
	cmd := nodesCommands[i]
	fs := newFlags(env, "nodes "+cmd.name, cmd.synopsis+" [--url URL] [--token TOKEN] [--state-dir DIR | --profile NAME]")
	cf := addClientFlags(fs)
	var o nodesOptions
	if strings.Contains(cmd.synopsis, "--node") {
		fs.StringVar(&o.node, "node", "", "the node: its id, IP, display name, or an id prefix of 6 or more characters")
	}
	if strings.Contains(cmd.synopsis, "--name") {
		fs.StringVar(&o.name, "name", "", "the new display name")
	}
	positional, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case cmd.positional != "" && len(positional) != 1:
		return &usageError{msg: fmt.Sprintf("nodes %s: give exactly one %s", cmd.name, cmd.positional)}
	case cmd.positional == "" && len(positional) > 0:
		return &usageError{msg: fmt.Sprintf("nodes %s: unexpected argument %q", cmd.name, positional[0])}
	case strings.Contains(cmd.synopsis, "--node") && o.node == "":
		return &usageError{msg: fmt.Sprintf("nodes %s: --node is required", cmd.name)}
	case strings.Contains(cmd.synopsis, "--name") && strings.TrimSpace(o.name) == "":
		return &usageError{msg: fmt.Sprintf("nodes %s: --name is required", cmd.name)}
	}
	if len(positional) == 1 {
		o.arg = positional[0]
	}
	o.json, o.width, o.now = *cf.json, terminalWidth(env, env.Stdout), time.Now()
	c, err := cf.connect(ctx, env)
	if err != nil {
		return failed("nodes "+cmd.name, err)
	}
	return failed("nodes "+cmd.name, cmd.run(ctx, c, env, o))
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

func nodesUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: pairgate nodes <command> [flags]\n\nManage node pairing of a profile on a running server.\n\nCommands:")
	for _, c := range nodesCommands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, `
Every nodes command takes --json (pure JSON on stdout) and:
  --url URL       the server (default $PAIRGATE_URL, else http://127.0.0.1:18789;
                  ws:// and wss:// work too, and ws://HOST/ws/NAME names profile NAME)
  --profile NAME  the server's profile of that name
  --state-dir DIR the served profile with that state directory (default
                  $OPENCLAW_STATE_DIR, else ~/.openclaw; when the token opens a
                  single profile and no directory was chosen, that profile)
  --token TOKEN   default $OPENCLAW_GATEWAY_TOKEN, else the profile's token in
                  $PAIRGATE_CONFIG, else <stateDir>/nodes/operator.token

Examples:
  pairgate nodes pending
  pairgate nodes approve 9b5a87a6-4780-4b92-a6ba-f2b617fdd92a
  pairgate nodes status --profile work
  pairgate nodes rename --node "kitchen ipad" --name "Den iPad"
  pairgate nodes remove --node 88a48a`)
}

func runPending(ctx context.Context, c *client, env Env, o nodesOptions) error {
	var res struct {
		Pending []db.PendingRequest `json:"pending"`
	}
	if err := c.do(ctx, http.MethodGet, "pending", nil, &res); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, res.Pending)
	}
	printPending(env.Stdout, o, res.Pending)
	return nil
}

func printPending(w io.Writer, o nodesOptions, pending []db.PendingRequest) {
	if len(pending) == 0 {
		fmt.Fprintln(w, "No pending pairing requests.")
		return
	}
	fmt.Fprintln(w, "Pending")
	rows := make([][]string, len(pending))
	for i, r := range pending {
		name := r.DisplayName
		if name == "" {
			name = r.NodeID
		}
		repair := ""
		if r.IsRepair {
			repair = "yes"
		}
		rows[i] = []string{r.RequestID, name, r.Platform, r.RemoteIP, ago(o.now, r.TS), repair}
	}
	table(w, o.width, []string{"Request", "Node", "Platform", "IP", "Requested", "Repair"}, rows)
}

func runList(ctx context.Context, c *client, env Env, o nodesOptions) error {
	var pending struct {
		Pending []db.PendingRequest `json:"pending"`
	}
	if err := c.do(ctx, http.MethodGet, "pending", nil, &pending); err != nil {
		return err
	}
	var nodes nodeList
	if err := c.do(ctx, http.MethodGet, "nodes", nil, &nodes); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, map[string]any{"pending": pending.Pending, "paired": nodes.Nodes})
	}
	fmt.Fprintf(env.Stdout, "Pending: %d · Paired: %d\n\n", len(pending.Pending), len(nodes.Nodes))
	printPending(env.Stdout, o, pending.Pending)
	if len(nodes.Nodes) == 0 {
		return nil
	}
	fmt.Fprintln(env.Stdout, "\nPaired")
	rows := make([][]string, len(nodes.Nodes))
	for i, n := range nodes.Nodes {
		rows[i] = []string{nodeName(n), n.NodeID, n.RemoteIP, ago(o.now, n.ConnectedAtMs)}
	}
	table(env.Stdout, o.width, []string{"Node", "ID", "IP", "Last Connect"}, rows)
	return nil
}

func nodeName(n nodeEntry) string {
	if n.DisplayName != "" {
		return n.DisplayName
	}
	return n.NodeID
}

func runStatus(ctx context.Context, c *client, env Env, o nodesOptions) error {
	var nodes nodeList
	if err := c.do(ctx, http.MethodGet, "nodes", nil, &nodes); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, nodes)
	}
	connected := 0
	for _, n := range nodes.Nodes {
		if n.Connected {
			connected++
		}
	}
	fmt.Fprintf(env.Stdout, "Known: %d · Paired: %d · Connected: %d\n", len(nodes.Nodes), len(nodes.Nodes), connected)
	if len(nodes.Nodes) == 0 {
		return nil
	}
	rows := make([][]string, len(nodes.Nodes))
	for i, n := range nodes.Nodes {
		rows[i] = []string{nodeName(n), n.NodeID, n.RemoteIP, detail(n), status(o.now, n), strings.Join(n.Caps, ", ")}
	}
	table(env.Stdout, o.width, []string{"Node", "ID", "IP", "Detail", "Status", "Caps"}, rows)
	return nil
}

// detail is the Detail column of status: device, hardware, permissions, version.
func detail(n nodeEntry) string {
	var parts []string
	if n.DeviceFamily != "" {
		parts = append(parts, "device: "+n.DeviceFamily)
	}
	if n.ModelIdentifier != "" {
		parts = append(parts, "hw: "+n.ModelIdentifier)
	}
	if len(n.Permissions) > 0 {
		byName := slices.SortedFunc(slices.Values(n.Permissions), func(a, b db.Permission) int { return strings.Compare(a.Name, b.Name) })
		perms := make([]string, len(byName))
		for i, x := range byName {
			perms[i] = x.Name + "=" + map[bool]string{true: "yes", false: "no"}[x.Granted]
		}
		parts = append(parts, "perms: ["+strings.Join(perms, ", ")+"]")
	}
	if n.Version != "" {
		parts = append(parts, "v"+n.Version)
	}
	return strings.Join(parts, " · ")
}

func status(now time.Time, n nodeEntry) string {
	if n.Connected {
		return "paired · connected (" + ago(now, n.ConnectedAtMs) + ")"
	}
	return "paired · disconnected"
}

func runDescribe(ctx context.Context, c *client, env Env, o nodesOptions) error {
	n, err := findNode(ctx, c, o.node)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, n)
	}
	w := env.Stdout
	fmt.Fprintf(w, "Node:     %s\nID:       %s\n", visible(nodeName(n)), visible(n.NodeID))
	for _, kv := range [][2]string{
		{"Platform", n.Platform}, {"Version", n.Version}, {"Core", n.CoreVersion}, {"UI", n.UIVersion},
		{"Device", n.DeviceFamily}, {"Hardware", n.ModelIdentifier}, {"IP", n.RemoteIP},
		{"Caps", strings.Join(n.Caps, ", ")}, {"Commands", strings.Join(n.Commands, ", ")},
	} {
		if kv[1] != "" {
			fmt.Fprintf(w, "%-9s %s\n", kv[0]+":", visible(kv[1]))
		}
	}
	fmt.Fprintf(w, "Status:   %s\n", status(o.now, n))
	return nil
}

func runDecide(verb string) func(context.Context, *client, Env, nodesOptions) error {
	return func(ctx context.Context, c *client, env Env, o nodesOptions) error {
		var res json.RawMessage // printed in the server's own key order
		if err := c.do(ctx, http.MethodPost, "requests/"+url.PathEscape(o.arg)+"/"+verb, nil, &res); err != nil {
			return err
		}
		return printJSON(env.Stdout, res)
	}
}

func runRename(ctx context.Context, c *client, env Env, o nodesOptions) error {
	n, err := findNode(ctx, c, o.node)
	if err != nil {
		return err
	}
	var res db.Renamed
	if err := c.do(ctx, http.MethodPatch, "nodes/"+url.PathEscape(n.NodeID), map[string]string{"displayName": o.name}, &res); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, res)
	}
	fmt.Fprintf(env.Stdout, "node rename ok: %s -> %s\n", visible(res.NodeID), visible(res.DisplayName))
	return nil
}

func runRemove(ctx context.Context, c *client, env Env, o nodesOptions) error {
	n, err := findNode(ctx, c, o.node)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, "nodes/"+url.PathEscape(n.NodeID), nil, nil); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, db.Removed{NodeID: n.NodeID})
	}
	fmt.Fprintf(env.Stdout, "node remove ok: %s (%s); its token no longer works\n", visible(n.NodeID), visible(nodeName(n)))
	return nil
}

func findNode(ctx context.Context, c *client, query string) (nodeEntry, error) {
	var nodes nodeList
	if err := c.do(ctx, http.MethodGet, "nodes", nil, &nodes); err != nil {
		return nodeEntry{}, err
	}
	return resolveNode(nodes.Nodes, query)
}

// resolveNode finds the node a person means, as OpenClaw's CLI does: its
// exact id, its exact IP, its display name (ignoring case and
// punctuation), or a prefix of its id of at least 6 characters. Unknown
// and ambiguous queries name the candidates.
func resolveNode(nodes []nodeEntry, query string) (nodeEntry, error) {
	q := strings.TrimSpace(query)
	for _, match := range []func(nodeEntry) bool{
		func(n nodeEntry) bool { return n.NodeID == q },
		func(n nodeEntry) bool { return n.RemoteIP != "" && n.RemoteIP == q },
		func(n nodeEntry) bool { return n.DisplayName != "" && fold(n.DisplayName) == fold(q) },
		func(n nodeEntry) bool { return len(q) >= 6 && strings.HasPrefix(n.NodeID, q) },
	} {
		var found []nodeEntry
		for _, n := range nodes {
			if match(n) {
				found = append(found, n)
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		}
		return nodeEntry{}, fmt.Errorf("ambiguous node: %s matches %s; give the full id", q, describeAll(found))
	}
	if len(q) < 6 && slices.ContainsFunc(nodes, func(n nodeEntry) bool { return strings.HasPrefix(n.NodeID, q) }) {
		return nodeEntry{}, fmt.Errorf("unknown node: %s (an id prefix needs 6 or more characters; known: %s)", q, describeAll(nodes))
	}
	return nodeEntry{}, fmt.Errorf("unknown node: %s (known: %s)", q, describeAll(nodes))
}

func describeAll(nodes []nodeEntry) string {
	if len(nodes) == 0 {
		return "none"
	}
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = nodeName(n)
		if n.DisplayName != "" {
			out[i] += " (" + n.NodeID + ")"
		}
	}
	return strings.Join(out, ", ")
}

// fold keeps letters and digits, lowercased: "Kitchen iPad (ws)" and
// "kitchen ipad ws" are the same name.
func fold(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func runProfiles(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "profiles", "[--json] [--url URL] [--token TOKEN]")
	cf := addClientFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, _, err := cf.newClient(env)
	if err != nil {
		return failed("profiles", err)
	}
	var res struct {
		Profiles []servedProfile `json:"profiles"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/profiles", nil, &res); err != nil {
		return failed("profiles", err)
	}
	if *cf.json {
		return printJSON(env.Stdout, res.Profiles)
	}
	rows := make([][]string, len(res.Profiles))
	for i, p := range res.Profiles {
		rows[i] = []string{p.Name, p.StateDir, fmt.Sprint(p.Pending), fmt.Sprint(p.Paired), fmt.Sprint(p.Connected)}
	}
	table(env.Stdout, terminalWidth(env, env.Stdout), []string{"Profile", "State dir", "Pending", "Paired", "Connected"}, rows)
	return nil
}

package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/pairgate/pairgate/db"
)

// nodeEntry is a paired node as the server lists it.
type nodeEntry = db.NodeEntry

// nodesCommands is pairgate nodes: the operator's pairing work on a
// profile of a running server, in the shapes of openclaw nodes.
var nodesCommands = group{name: "nodes", usage: nodesUsage, commands: []subcommandEntry{
	{"pending", "[--json]", "list pending pairing requests", func() subcommand { return &pendingCommand{} }},
	{"list", "[--json]", "list pending and paired nodes", func() subcommand { return &listCommand{} }},
	{"status", "[--json]", "list known nodes with connection status and capabilities", func() subcommand { return &statusCommand{} }},
	{"describe", "--node ID|NAME [--json]", "describe one node", func() subcommand { return &describeCommand{} }},
	{"approve", "REQUEST_ID [--json]", "approve a pending pairing request (prints the node's new token once)", func() subcommand { return &decideCommand{approve: true} }},
	{"reject", "REQUEST_ID [--json]", "reject a pending pairing request", func() subcommand { return &decideCommand{} }},
	{"rename", "--node ID|NAME --name NAME [--json]", "rename a paired node (kept across repairs)", func() subcommand { return &renameCommand{} }},
	{"remove", "--node ID|NAME [--json]", "remove a pairing: its token stops working at once", func() subcommand { return &removeCommand{} }},
}}

func runNodes(ctx context.Context, env Env, args []string) error {
	return nodesCommands.run(ctx, env, args)
}

func nodesUsage(w io.Writer, commands []subcommandEntry) {
	fmt.Fprintln(w, "Usage: pairgate nodes <command> [flags]\n\nManage node pairing of a profile on a running server.\n\nCommands:")
	for _, c := range commands {
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
  --token-file F  the token from file F, instead of --token (which other
                  users see in the process list)
  --timeout D     how long to wait for each answer (default 30s)

Examples:
  pairgate nodes pending
  pairgate nodes approve 9b5a87a6-4780-4b92-a6ba-f2b617fdd92a
  pairgate nodes status --profile work
  pairgate nodes rename --node "kitchen ipad" --name "Den iPad"
  pairgate nodes remove --node 88a48a`)
}

func nodeName(n nodeEntry) string { return nameOr(n.DisplayName, n.NodeID) }

// nameOr is a node's display name, or its id when it has none.
func nameOr(displayName, nodeID string) string {
	if displayName != "" {
		return displayName
	}
	return nodeID
}

// findNode is the paired node a person means by query (see resolveNode).
func findNode(ctx context.Context, c *conn, query string) (nodeEntry, error) {
	list, err := c.api.Nodes(ctx, c.profile)
	if err != nil {
		return nodeEntry{}, err
	}
	return resolveNode(list.Nodes, query)
}

// resolveNode finds the node a person means, as OpenClaw's CLI does: its
// exact id, its exact IP, its display name (ignoring case and
// punctuation), or a prefix of its id of at least 6 characters. Unknown
// and ambiguous queries name the candidates.
func resolveNode(nodes []nodeEntry, query string) (nodeEntry, error) {
	q := strings.TrimSpace(query)
	for _, match := range []func(nodeEntry) bool{
		func(n nodeEntry) bool { return n.NodeID == q },
		// A name exactly as shown, before an address and before the
		// folded form (which a name of emoji alone has none of).
		func(n nodeEntry) bool { return q != "" && n.DisplayName == q },
		func(n nodeEntry) bool { return n.RemoteIP != "" && n.RemoteIP == q },
		// A query or a name with no letter or digit folds to "": it
		// matches no name (" " selected, and remove removed, a node
		// named "🔥🔥").
		func(n nodeEntry) bool { return fold(q) != "" && fold(n.DisplayName) == fold(q) },
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
		return nodeEntry{}, &db.Error{Code: db.CodeInvalid, Message: fmt.Sprintf("ambiguous node: %s matches %s; give the full id", q, describeAll(found))}
	}
	if len(q) < 6 && slices.ContainsFunc(nodes, func(n nodeEntry) bool { return strings.HasPrefix(n.NodeID, q) }) {
		return nodeEntry{}, &db.Error{Code: db.CodeNotFound, Message: fmt.Sprintf("unknown node: %s (an id prefix needs 6 or more characters; known: %s)", q, describeAll(nodes))}
	}
	return nodeEntry{}, &db.Error{Code: db.CodeNotFound, Message: fmt.Sprintf("unknown node: %s (known: %s)", q, describeAll(nodes))}
}

func describeAll(nodes []nodeEntry) string {
	if len(nodes) == 0 {
		return "none"
	}
	const shown = 20 // a profile of thousands of nodes is not one line of an error
	out := make([]string, 0, min(len(nodes), shown)+1)
	for _, n := range nodes[:min(len(nodes), shown)] {
		name := nodeName(n)
		if n.DisplayName != "" {
			name += " (" + n.NodeID + ")"
		}
		out = append(out, name)
	}
	if len(nodes) > shown {
		out = append(out, fmt.Sprintf("and %d more: pairgate nodes status", len(nodes)-shown))
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

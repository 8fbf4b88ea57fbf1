package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
)

// pendingCommand is pairgate nodes pending.
type pendingCommand struct{ listing }

func (pendingCommand) run(ctx context.Context, c *conn, out output) error {
	pending, err := c.api.Pending(ctx, c.profile)
	if err != nil {
		return err
	}
	if out.json || len(pending) == 0 {
		return out.print(pending, func() { printPending(out, pending, nil) })
	}
	// node.pair.list: the paired nodes too, whose names a request may
	// copy, in one snapshot with the requests. Fetched only when there
	// are requests to show: the paired list may be long.
	list, err := c.api.PairList(ctx, c.profile)
	if err != nil {
		return err
	}
	return out.print(list.Pending, func() { printPending(out, list.Pending, list.Paired) })
}

// printPending prints the pending requests, and after them a warning for
// each one named like another node (lookalikes).
func printPending(out output, pending []db.PendingRequest, paired []db.Node) {
	if len(pending) == 0 {
		fmt.Fprintln(out.w, "No pending pairing requests.")
		return
	}
	fmt.Fprintln(out.w, "Pending")
	rows := make([][]string, len(pending))
	for i, r := range pending {
		repair := ""
		if r.IsRepair {
			repair = "yes"
		}
		rows[i] = []string{r.RequestID, nameOr(r.DisplayName, r.NodeID), r.Platform, r.RemoteIP, ago(out.now, r.TS), repair}
	}
	table(out.w, out.width, []string{"Request", "Node", "Platform", "IP", "Requested", "Repair"}, rows)
	warn := lookalikes(pending, paired)
	for _, r := range pending {
		if l, ok := warn[r.RequestID]; ok {
			fmt.Fprintln(out.w, visible(l.warning(r)))
		}
	}
}

// listCommand is pairgate nodes list: pending requests and paired nodes,
// as OpenClaw's own (node.pair.list, whose lastConnectedAtMs is the Last
// Connect of a node connected or not).
type listCommand struct{ listing }

func (listCommand) run(ctx context.Context, c *conn, out output) error {
	list, err := c.api.PairList(ctx, c.profile)
	if err != nil {
		return err
	}
	return out.print(list, func() {
		fmt.Fprintf(out.w, "Pending: %d · Paired: %d\n\n", len(list.Pending), len(list.Paired))
		printPending(out, list.Pending, list.Paired)
		if len(list.Paired) == 0 {
			return
		}
		fmt.Fprintln(out.w, "\nPaired")
		rows := make([][]string, len(list.Paired))
		for i, n := range list.Paired {
			rows[i] = []string{nameOr(n.DisplayName, n.NodeID), n.NodeID, n.RemoteIP, ago(out.now, n.LastConnectedAtMs)}
		}
		table(out.w, out.width, []string{"Node", "ID", "IP", "Last Connect"}, rows)
	})
}

// statusCommand is pairgate nodes status: paired nodes, live or not,
// with what they can do.
type statusCommand struct{ listing }

func (statusCommand) run(ctx context.Context, c *conn, out output) error {
	list, err := c.api.Nodes(ctx, c.profile)
	if err != nil {
		return err
	}
	return out.print(list, func() { printStatus(out, list.Nodes) })
}

func printStatus(out output, nodes []nodeEntry) {
	connected := 0
	for _, n := range nodes {
		if n.Connected {
			connected++
		}
	}
	fmt.Fprintf(out.w, "Known: %d · Paired: %d · Connected: %d\n", len(nodes), len(nodes), connected)
	if len(nodes) == 0 {
		return
	}
	rows := make([][]string, len(nodes))
	for i, n := range nodes {
		rows[i] = []string{nodeName(n), n.NodeID, n.RemoteIP, detail(n), status(out.now, n), strings.Join(n.Caps, ", ")}
	}
	table(out.w, out.width, []string{"Node", "ID", "IP", "Detail", "Status", "Caps"}, rows)
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

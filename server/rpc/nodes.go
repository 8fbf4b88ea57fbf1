package rpc

import (
	"context"
	"slices"

	"github.com/pairgate/pairgate/db"
)

// NodeEntries lists every paired node of the profile, live sessions
// overlaid.
func NodeEntries(ctx context.Context, p *Profile) ([]db.NodeEntry, error) {
	nodes, err := p.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]db.NodeEntry, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, p.Live.Entry(n))
	}
	return out, nil
}

// Entry shapes a paired node as node.list lists it. live is the node's
// newest live session (nil when it is not connected), connected at
// connectedAtMs: what it said in connect shows, but the operator's
// display name wins.
func Entry(n db.Node, live *Session, connectedAtMs int64) db.NodeEntry {
	e := db.NodeEntry{NodeID: n.NodeID, NodeMeta: n.NodeMeta, Paired: true}
	if live != nil {
		e.NodeMeta = FillMeta(live.Node, n.NodeMeta)
		if n.DisplayName != "" {
			e.DisplayName = n.DisplayName
		}
		e.Connected, e.ConnectedAtMs = true, connectedAtMs
	}
	// caps and commands are always listed, sorted, as OpenClaw lists them.
	e.Caps, e.Commands = sorted(e.Caps), sorted(e.Commands)
	return e
}

func sorted(items []string) []string {
	out := slices.Clone(items)
	if out == nil {
		return []string{}
	}
	slices.Sort(out)
	return out
}

// FillMeta takes what a lacks from b.
func FillMeta(a, b db.NodeMeta) db.NodeMeta {
	pick := func(x, y string) string {
		if x != "" {
			return x
		}
		return y
	}
	a.DisplayName = pick(a.DisplayName, b.DisplayName)
	a.Platform = pick(a.Platform, b.Platform)
	a.Version = pick(a.Version, b.Version)
	a.CoreVersion = pick(a.CoreVersion, b.CoreVersion)
	a.UIVersion = pick(a.UIVersion, b.UIVersion)
	a.DeviceFamily = pick(a.DeviceFamily, b.DeviceFamily)
	a.ModelIdentifier = pick(a.ModelIdentifier, b.ModelIdentifier)
	if a.Caps == nil {
		a.Caps = b.Caps
	}
	if a.Commands == nil {
		a.Commands = b.Commands
	}
	if a.Permissions == nil {
		a.Permissions = b.Permissions
	}
	return a
}

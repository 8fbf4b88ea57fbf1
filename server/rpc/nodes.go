package server

import (
	"context"
	"slices"

	"github.com/pairgate/pairgate/db"
)

type nodeDescription struct {
	TS int64 `json:"ts"`
	db.NodeEntry
}

// nodeEntries lists every paired node of the profile.
func (s *Server) nodeEntries(ctx context.Context, p *Profile) ([]db.NodeEntry, error) {
	nodes, err := p.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	h := s.hub(p)
	out := make([]db.NodeEntry, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, h.entry(n))
	}
	return out, nil
}

// entry shapes a paired node, overlaying its newest live session. The
// operator's display name wins over the one the node connected with.
func (h *hub) entry(n db.Node) db.NodeEntry {
	h.mu.Lock()
	var live *wsConn
	if sessions := h.live[n.NodeID]; len(sessions) > 0 {
		live = sessions[len(sessions)-1]
	}
	h.mu.Unlock()
	e := db.NodeEntry{NodeID: n.NodeID, NodeMeta: n.NodeMeta, Paired: true}
	if live != nil {
		e.NodeMeta = fillMeta(live.sess.node, n.NodeMeta)
		if n.DisplayName != "" {
			e.DisplayName = n.DisplayName
		}
		e.Connected, e.ConnectedAtMs = true, live.connectedAtMs
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

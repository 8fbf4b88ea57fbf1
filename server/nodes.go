package server

import (
	"context"
	"slices"

	"github.com/pairgate/pairgate/db"
)

// NodeEntry is one node as node.list and node.describe show it (and the
// CLI reads it): the paired record, with what its live session says on
// top while it is connected. Field order follows OpenClaw's.
type NodeEntry struct {
	NodeID          string          `json:"nodeId"`
	DisplayName     string          `json:"displayName,omitempty"`
	Platform        string          `json:"platform,omitempty"`
	Version         string          `json:"version,omitempty"`
	CoreVersion     string          `json:"coreVersion,omitempty"`
	UIVersion       string          `json:"uiVersion,omitempty"`
	DeviceFamily    string          `json:"deviceFamily,omitempty"`
	ModelIdentifier string          `json:"modelIdentifier,omitempty"`
	RemoteIP        string          `json:"remoteIp,omitempty"`
	Caps            []string        `json:"caps"`
	Commands        []string        `json:"commands"`
	Permissions     map[string]bool `json:"permissions,omitempty"`
	ConnectedAtMs   int64           `json:"connectedAtMs,omitempty"`
	Paired          bool            `json:"paired"`
	Connected       bool            `json:"connected"`
}

// NodeList is node.list's answer.
type NodeList struct {
	TS    int64       `json:"ts"`
	Nodes []NodeEntry `json:"nodes"`
}

type nodeDescription struct {
	TS int64 `json:"ts"`
	NodeEntry
}

// nodeEntries lists every paired node of the profile.
func (s *Server) nodeEntries(ctx context.Context, p *Profile) ([]NodeEntry, error) {
	nodes, err := p.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	h := s.hub(p)
	out := make([]NodeEntry, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, h.entry(n))
	}
	return out, nil
}

// entry shapes a paired node, overlaying its newest live session. The
// operator's display name wins over the one the node connected with.
func (h *hub) entry(n db.Node) NodeEntry {
	h.mu.Lock()
	var live *wsConn
	if sessions := h.live[n.NodeID]; len(sessions) > 0 {
		live = sessions[len(sessions)-1]
	}
	h.mu.Unlock()
	m := n.NodeMeta
	e := NodeEntry{NodeID: n.NodeID, Paired: true}
	if live != nil {
		m = fillMeta(live.sess.node, m)
		m.DisplayName = n.DisplayName
		if m.DisplayName == "" {
			m.DisplayName = live.sess.node.DisplayName
		}
		e.Connected, e.ConnectedAtMs = true, live.connectedAtMs
	}
	e.DisplayName, e.Platform, e.Version = m.DisplayName, m.Platform, m.Version
	e.CoreVersion, e.UIVersion, e.DeviceFamily, e.ModelIdentifier = m.CoreVersion, m.UIVersion, m.DeviceFamily, m.ModelIdentifier
	e.RemoteIP, e.Permissions = m.RemoteIP, m.Permissions
	e.Caps, e.Commands = sorted(m.Caps), sorted(m.Commands)
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

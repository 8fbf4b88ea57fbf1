package cli

import (
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/confusable"
)

// A device asking to pair may take the name of a node already paired
// ("Kitchen iPad"), exactly or in letters that look the same (a Cyrillic
// "а", a capital I for an l, "rn" for "m", an accent, full-width forms).
// Its request then reads like that node's repair, yet approving it pairs
// another device. The pending list says so beside such a request. The
// operator page (server/ui/app.js) applies the same rules.

// lookalike is the other node a request's name looks like.
type lookalike struct {
	name, nodeID string
	// paired says it is paired; else it is asking too.
	paired bool
}

// warning is the line that says so, for request r.
func (l lookalike) warning(r db.PendingRequest) string {
	s := "Warning: request " + r.RequestID + " (" + nameOr(r.DisplayName, r.NodeID) + ", node " + r.NodeID + ") is named like "
	if l.paired {
		return s + "the paired node " + l.name + " (" + l.nodeID + "), but is another device: approve it only to pair a second one."
	}
	return s + l.name + " (node " + l.nodeID + "), which asks too: at most one of them is the device you expect."
}

// lookalikes finds, for each pending request whose name looks like that
// of another node (paired, or asking too), that node; a paired one first.
// A request of a paired node's own id is its repair, not a look-alike.
func lookalikes(pending []db.PendingRequest, paired []db.Node) map[string]lookalike {
	bySkeleton := map[string][]lookalike{}
	add := func(name, nodeID string, paired bool) {
		if k := confusable.Skeleton(name); k != "" {
			bySkeleton[k] = append(bySkeleton[k], lookalike{name, nodeID, paired})
		}
	}
	for _, n := range paired {
		add(nameOr(n.DisplayName, n.NodeID), n.NodeID, true)
	}
	for _, r := range pending {
		add(nameOr(r.DisplayName, r.NodeID), r.NodeID, false)
	}
	out := map[string]lookalike{}
	for _, r := range pending {
		for _, o := range bySkeleton[confusable.Skeleton(nameOr(r.DisplayName, r.NodeID))] {
			if o.nodeID != r.NodeID {
				out[r.RequestID] = o // paired ones come first
				break
			}
		}
	}
	return out
}

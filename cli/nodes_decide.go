package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/pairgate/pairgate/db"
)

// decideCommand is pairgate nodes approve|reject REQUEST_ID.
type decideCommand struct {
	approve   bool
	requestID string
}

func (*decideCommand) declare(*flag.FlagSet) {}

func (cmd *decideCommand) check(args []string) error {
	if len(args) != 1 {
		return errors.New("give exactly one requestId")
	}
	cmd.requestID = args[0]
	return nil
}

// run prints the server's answer, JSON either way: an approval holds the
// node's new token, shown this once.
func (cmd *decideCommand) run(ctx context.Context, c *conn, out output) error {
	var res any
	var err error
	if cmd.approve {
		res, err = c.api.Approve(ctx, c.profile, cmd.requestID)
	} else {
		res, err = c.api.Reject(ctx, c.profile, cmd.requestID)
	}
	if db.ErrorCode(err) == db.CodeNotFound {
		return fmt.Errorf("%w (%s)", err, cmd.hint(ctx, c))
	}
	if err != nil {
		return err
	}
	return printJSON(out.w, res)
}

// hint says what an unknown request id may have meant: the pending
// request it begins, or the one of the node it names, matched as --node
// matches (resolveNode) among the nodes with a pending request (a CLI
// trial gave an id's first characters, a node id and a name, and got
// "unknown requestId" each time).
func (cmd *decideCommand) hint(ctx context.Context, c *conn) string {
	none := fmt.Sprintf("no pending request of profile %q has it; `pairgate nodes pending` lists them", c.profile)
	pending, err := c.api.Pending(ctx, c.profile)
	if err != nil {
		return none
	}
	q := strings.TrimSpace(cmd.requestID)
	var begins []string
	requesters := make([]nodeEntry, len(pending))
	for i, r := range pending {
		if len(q) >= 6 && strings.HasPrefix(r.RequestID, q) {
			begins = append(begins, r.RequestID)
		}
		requesters[i] = nodeEntry{NodeID: r.NodeID, NodeMeta: r.NodeMeta}
	}
	if len(begins) == 1 {
		return "give the whole id: " + visible(begins[0])
	}
	if n, err := resolveNode(requesters, q); err == nil {
		i := slices.IndexFunc(pending, func(r db.PendingRequest) bool { return r.NodeID == n.NodeID })
		return fmt.Sprintf("that names a node; its pending request is %s", visible(pending[i].RequestID))
	}
	return none
}

package cli

import (
	"context"
	"errors"
	"flag"
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
	if err != nil {
		return err
	}
	return printJSON(out.w, res)
}

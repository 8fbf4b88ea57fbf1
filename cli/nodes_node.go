package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/pairgate/pairgate/db"
)

// nodeFlag is --node, which the commands on one paired node take.
type nodeFlag struct{ node string }

func (f *nodeFlag) declare(fs *flag.FlagSet) {
	fs.StringVar(&f.node, "node", "", "the node: its id, IP, display name, or an id prefix of 6 or more characters")
}

func (f *nodeFlag) check(args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	if f.node == "" {
		return errors.New("--node is required")
	}
	return nil
}

// describeCommand is pairgate nodes describe --node.
type describeCommand struct{ nodeFlag }

func (*describeCommand) readOnly() bool { return true }

func (cmd *describeCommand) run(ctx context.Context, c *conn, out output) error {
	n, err := findNode(ctx, c, cmd.node)
	if err != nil {
		return err
	}
	return out.print(n, func() { printNode(out, n) })
}

func printNode(out output, n nodeEntry) {
	fmt.Fprintf(out.w, "Node:     %s\nID:       %s\n", visible(nodeName(n)), visible(n.NodeID))
	for _, kv := range [][2]string{
		{"Platform", n.Platform}, {"Version", n.Version}, {"Core", n.CoreVersion}, {"UI", n.UIVersion},
		{"Device", n.DeviceFamily}, {"Hardware", n.ModelIdentifier}, {"IP", n.RemoteIP},
		{"Caps", strings.Join(n.Caps, ", ")}, {"Commands", strings.Join(n.Commands, ", ")},
	} {
		if kv[1] != "" {
			fmt.Fprintf(out.w, "%-9s %s\n", kv[0]+":", visible(kv[1]))
		}
	}
	fmt.Fprintf(out.w, "Status:   %s\n", status(out.now, n))
}

// renameCommand is pairgate nodes rename --node --name.
type renameCommand struct {
	nodeFlag
	name string
}

func (cmd *renameCommand) declare(fs *flag.FlagSet) {
	cmd.nodeFlag.declare(fs)
	fs.StringVar(&cmd.name, "name", "", "the new display name")
}

func (cmd *renameCommand) check(args []string) error {
	if err := cmd.nodeFlag.check(args); err != nil {
		return err
	}
	if strings.TrimSpace(cmd.name) == "" {
		return errors.New("--name is required")
	}
	return nil
}

func (cmd *renameCommand) run(ctx context.Context, c *conn, out output) error {
	n, err := findNode(ctx, c, cmd.node)
	if err != nil {
		return err
	}
	res, err := c.api.Rename(ctx, c.profile, n.NodeID, cmd.name)
	if err != nil {
		return err
	}
	return out.print(res, func() {
		fmt.Fprintf(out.w, "node rename ok: %s -> %s\n", visible(res.NodeID), visible(res.DisplayName))
	})
}

// removeCommand is pairgate nodes remove --node.
type removeCommand struct{ nodeFlag }

func (cmd *removeCommand) run(ctx context.Context, c *conn, out output) error {
	n, err := findNode(ctx, c, cmd.node)
	if err != nil {
		return err
	}
	if err := c.api.Remove(ctx, c.profile, n.NodeID); err != nil {
		return err
	}
	return out.print(db.Removed{NodeID: n.NodeID}, func() {
		fmt.Fprintf(out.w, "node remove ok: %s (%s); its token no longer works\n", visible(n.NodeID), visible(nodeName(n)))
	})
}

// Command pairgate is the node pairing server and its command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pairgate/pairgate/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

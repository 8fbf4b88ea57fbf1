package cli

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs `pairgate serve` when a test re-executes this binary as a
// server to kill (crash_test.go); otherwise every test must stop what it
// started.
func TestMain(m *testing.M) {
	if os.Getenv(serveHelperEnv) != "" {
		os.Exit(Run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

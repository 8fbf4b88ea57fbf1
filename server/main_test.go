package server

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs a bare server when a benchmark re-executes this binary to
// measure it from outside (idle_test.go); otherwise every test must stop
// what it started: servers, hubs, sweepers, clients.
func TestMain(m *testing.M) {
	if dir := os.Getenv(serverHelperEnv); dir != "" {
		os.Exit(serverHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

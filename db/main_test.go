package db

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the crash helper when asked (crash_test.go re-executes
// this binary and kills it); otherwise every test must stop what it
// started: stores, sweepers.
func TestMain(m *testing.M) {
	if mode := os.Getenv(crashHelperEnv); mode != "" {
		os.Exit(crashHelper(mode))
	}
	goleak.VerifyTestMain(m)
}

package db

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must stop what it started: stores, sweepers, servers.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

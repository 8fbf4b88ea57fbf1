package server

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must stop what it started: servers, hubs, sweepers, clients.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

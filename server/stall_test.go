package server

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/locktest"
)

// A write that does not return (here: another process holds the
// database's write lock, as a sqlite3 shell left inside BEGIN does; a
// hung disk looks the same) makes /readyz call its profile unavailable
// and say why, shows in /metrics and the log, and clears once writes go
// through again. The other profile stays ready.
func TestReadyzNamesAStalledWrite(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.WriteStallLimit = 200 * time.Millisecond })
	release := locktest.HoldWriteLock(t, ts.byName["default"].Config.DatabasePath())

	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", ts.url+"/api/v1/profiles/default/requests", strings.NewReader(`{"nodeId":"waits"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()

	var ready readiness
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := ts.api(t, "GET", "/readyz", "", "")
		r.decode(t, &ready)
		if r.status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz while a write waits on the lock = %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ready.Profiles["default"] != "unavailable" || ready.Profiles["work"] != "ok" ||
		!strings.Contains(ready.Errors["default"], "no write has gone through for") ||
		// The sweeper's write or the request's, whichever came first.
		!regexp.MustCompile(`the latest one \((request pairing|expire requests|prune requests|prune events)\) waits on`).MatchString(ready.Errors["default"]) ||
		!strings.Contains(ready.Errors["default"], "write lock") {
		t.Fatalf("/readyz while a write waits on the lock: %+v", ready)
	}
	metrics := string(ts.api(t, "GET", "/metrics", "", "").body)
	m := regexp.MustCompile(`pairgate_write_stall_seconds\{profile="default"\} (\S+)`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no pairgate_write_stall_seconds for default in /metrics")
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 0.2 {
		t.Fatalf("pairgate_write_stall_seconds{profile=\"default\"} = %s while stalled", m[1])
	}
	waitFor(t, func() bool { return strings.Contains(ts.log.String(), "writes are stalled") }, "the stall in the log")
	select {
	case code := <-answered:
		t.Fatalf("the request was answered (%d) while the lock was held", code)
	default:
	}
	// A client that gives up while its request is queued: the request
	// never runs, and the log does not call it the server's failure.
	impatient := &http.Client{Timeout: 300 * time.Millisecond}
	req, _ := http.NewRequest("POST", ts.url+"/api/v1/profiles/default/requests", strings.NewReader(`{"nodeId":"gives-up"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the impatient request was answered (%d) while the lock was held", resp.StatusCode)
	}
	waitFor(t, func() bool { return strings.Contains(ts.log.String(), `level=INFO msg="call given up by its caller"`) }, "the given-up call in the log")
	if logs := ts.log.String(); strings.Contains(logs, `level=ERROR msg="request failed"`) || strings.Contains(logs, `level=ERROR msg="call failed"`) {
		t.Fatalf("a client that gave up is logged as an error:\n%s", ts.log)
	}

	release()
	if code := <-answered; code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("the request once the lock was released: %d", code)
	}
	var pending struct {
		Pending []db.PendingRequest `json:"pending"`
	}
	ts.mustAPI(t, http.StatusOK, "GET", "/api/v1/profiles/default/pending", "", &pending)
	if len(pending.Pending) != 1 || pending.Pending[0].NodeID != "waits" {
		t.Fatalf("pending after the stall: %+v (the given-up request must not have run)", pending.Pending)
	}
	if r := ts.api(t, "GET", "/readyz", "", ""); r.status != http.StatusOK {
		t.Fatalf("/readyz after the write went through = %d %s", r.status, r.body)
	}
	waitFor(t, func() bool { return strings.Contains(ts.log.String(), "writes go through again") }, "the recovery in the log")
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package cli

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db/locktest"
)

// A server that takes the call and does not answer in --timeout (one whose
// write waits on a stalled database) is not called absent: the operator
// reads that what was asked may still be done, and where to look.
func TestCLISaysATimedOutCallMayStillBeDone(t *testing.T) {
	// A real socket that accepts and reads, and never answers.
	url, stop := loopbackPeer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	getenv := testEnv(t, nil)
	code, _, errs := cliRun(getenv, "nodes", "approve", "some-request", "--url", url, "--profile", "default", "--token", "operator-token-0123456789abcdef0123", "--timeout", "200ms")
	if code != exitFailed || !strings.Contains(errs, "the server at "+url+" did not answer in 200ms; what was asked may still be done") ||
		!strings.Contains(errs, "pairgate health") || strings.Contains(errs, "no pairgate answers") {
		t.Fatalf("a call that timed out: exit %d\n%s", code, errs)
	}
	// A read that times out changed nothing, and says so (a scale trial:
	// the write's words fit no list).
	for _, args := range [][]string{{"nodes", "list"}, {"nodes", "describe", "--node", "n1"}, {"profiles"}} {
		code, _, errs := cliRun(getenv, append(args, "--url", url, "--profile", "default", "--token", "operator-token-0123456789abcdef0123", "--timeout", "200ms")...)
		if code != exitFailed || !strings.Contains(errs, "did not answer in 200ms; this command changes nothing") || strings.Contains(errs, "may still be done") {
			t.Fatalf("%v that timed out: exit %d\n%s", args, code, errs)
		}
	}
	if code, _, errs := cliRun(getenv, "nodes", "pending", "--url", url, "--timeout", "0s"); code != exitUsage || !strings.Contains(errs, "--timeout 0s: give a positive duration") {
		t.Fatalf("--timeout 0s: exit %d\n%s", code, errs)
	}
	// Nothing listens: that is still "no pairgate answers".
	stop()
	if code, _, errs := cliRun(getenv, "nodes", "pending", "--url", url, "--profile", "default", "--token", "x"); code != exitFailed || !strings.Contains(errs, "no pairgate answers at "+url) {
		t.Fatalf("nothing listening: exit %d\n%s", code, errs)
	}
}

// health prints why a profile is unavailable, not only that it is. The
// /readyz here is a stand-in on a loopback socket answering what the
// server answers during a stalled write (server/stall_test.go holds a
// real one); faked because the server waits 10 s before saying so.
func TestHealthSaysWhyAProfileIsUnavailable(t *testing.T) {
	const why = "no write has gone through for 14s: the latest one (approve) waits on /srv/gw/nodes/pairing.sqlite"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"ok":false,"profiles":{"default":"unavailable","work":"ok"},"errors":{"default":"` + why + `"}}`))
	}))
	defer srv.Close()
	code, out, errs := cliRun(testEnv(t, nil), "health", "--url", srv.URL)
	if code != exitFailed || !strings.Contains(errs, "not ready: default: "+why) || !strings.Contains(out, `"errors":{"default":`) {
		t.Fatalf("health: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
}

// Stopping a server whose write waits on a database another process
// holds the write lock of says what the stop waits for, before it waits
// (the log said "stopped" and the process went on for 15 s, silently).
func TestServeSaysWhatItsStopWaitsFor(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/gw\n    sweepInterval: 50ms\n", dir)), 0o600)
	srv := startServe(t, testEnv(t, nil), "--config", cfg)
	release := locktest.HoldWriteLock(t, filepath.Join(dir, "gw", "nodes", "pairing.sqlite"))
	// The sweeper's next write waits on the lock; a second later it is
	// a stall worth naming.
	time.Sleep(1500 * time.Millisecond)
	srv.cancel()
	srv.cancel = nil
	deadline := time.After(20 * time.Second)
	for !strings.Contains(srv.stderr.String(), "waiting for the profile's running write to end") {
		select {
		case <-deadline:
			t.Fatalf("no word of what the stop waits for:\n%s", srv.stderr)
		case code := <-srv.done:
			t.Fatalf("serve exited (%d) before the lock was let go:\n%s", code, srv.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Which of the sweeper's writes (expire, then prune requests and
	// events) met the lock depends on when it was taken.
	if !regexp.MustCompile(`latest one \((expire requests|prune requests|prune events)\) waits on `).MatchString(srv.stderr.String()) {
		t.Fatalf("the line does not name the write:\n%s", srv.stderr)
	}
	release()
	srv.wait(t)
}

// A server that takes the call and closes the connection without an
// answer (one stopping mid-call) is not called absent either: what was
// asked may or may not be done.
func TestCLISaysACutCallMayOrMayNotBeDone(t *testing.T) {
	url, _ := loopbackPeer(t, func(c net.Conn) {
		c.Read(make([]byte, 4096)) // the request arrives
	})
	code, _, errs := cliRun(testEnv(t, nil), "nodes", "approve", "some-request", "--url", url, "--profile", "default", "--token", "operator-token-0123456789abcdef0123")
	if code != exitFailed || !strings.Contains(errs, "the connection to the server at "+url+" ended before it answered") ||
		!strings.Contains(errs, "may or may not be done") || strings.Contains(errs, "no pairgate answers") {
		t.Fatalf("a call cut off: exit %d\n%s", code, errs)
	}
}

// loopbackPeer listens on 127.0.0.1 and hands each connection to serve,
// closing it after; it returns the listener's http:// URL and a stop
// that closes the listener (also at the test's end).
func loopbackPeer(t *testing.T, serve func(net.Conn)) (url string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String(), func() { ln.Close() }
}

package cli

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
)

const serveHelperEnv = "PAIRGATE_TEST_SERVE"

// startServerProcess runs this test binary as `pairgate serve` on the
// state directory and returns its URL once it listens.
func startServerProcess(t *testing.T, stateDir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveHelperEnv+"=1", "OPENCLAW_STATE_DIR="+stateDir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- "http://" + m[1]
			}
		}
	}()
	select {
	case url := <-found:
		return cmd, url
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("server process did not listen")
		return nil, ""
	}
}

func post(url, token, body string) (*http.Response, error) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultClient.Do(req)
}

// killCycles is how many times the server is killed: a short series in
// the README's test command, the long one when PAIRGATE_LONG_TESTS=1
// (.ci/run sets it for a second run after the README's command).
func killCycles() int {
	if os.Getenv("PAIRGATE_LONG_TESTS") == "1" {
		return 100
	}
	return 10
}

// TestKilledServerKeepsAcknowledgedApprovals kills a serving process while
// a client requests and approves as fast as it is answered. Each kill waits
// for the cycle's first acknowledged approval (so the server is up and
// working, however slow the machine), then lands after a random moment
// while the next calls are in flight. Every approval the client saw
// acknowledged must survive and verify; no speed is asked for.
func TestKilledServerKeepsAcknowledgedApprovals(t *testing.T) {
	cycles := killCycles()
	stateDir := filepath.Join(t.TempDir(), "gw")
	acked := map[string]string{} // node → token the client saw acknowledged
	var mu sync.Mutex
	inFlightAtKill := 0
	for c := range cycles {
		cmd, url := startServerProcess(t, stateDir)
		token, err := config.ReadTokenFile(filepath.Join(stateDir, "nodes", "operator.token"))
		if err != nil {
			t.Fatal(err)
		}
		api := url + "/api/v1/profiles/default"
		stop := make(chan struct{})
		done := make(chan struct{})
		firstAck := make(chan struct{})
		var inFlight atomic.Int32
		go func() { // approvals as fast as they are answered
			defer close(done)
			first := true
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				node := fmt.Sprintf("c%d-n%d", c, i)
				inFlight.Add(1)
				resp, err := post(api+"/requests", token, `{"nodeId":"`+node+`"}`)
				if err != nil {
					inFlight.Add(-1)
					return
				}
				var req db.RequestResult
				json.NewDecoder(resp.Body).Decode(&req)
				resp.Body.Close()
				resp, err = post(api+"/requests/"+req.Request.RequestID+"/approve", token, "")
				if err != nil {
					inFlight.Add(-1)
					return
				}
				var a db.Approval
				err = json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				inFlight.Add(-1)
				if err == nil && resp.StatusCode == 200 {
					mu.Lock()
					acked[node] = a.Node.Token
					mu.Unlock()
					if first {
						first = false
						close(firstAck)
					}
				}
			}
		}()
		select {
		case <-firstAck:
		case <-done:
			t.Fatalf("cycle %d: the client stopped before any approval was acknowledged", c)
		case <-time.After(time.Minute):
			t.Fatalf("cycle %d: no approval acknowledged within a minute", c)
		}
		time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
		if inFlight.Load() > 0 {
			inFlightAtKill++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		<-done
	}

	dbPath := filepath.Join(stateDir, "nodes", "pairing.sqlite")
	raw, err := sql.Open("sqlite", db.DSN(dbPath, false))
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	raw.QueryRow("PRAGMA integrity_check").Scan(&integrity)
	raw.Close()
	if integrity != "ok" {
		t.Fatalf("integrity_check after %d kills: %s", cycles, integrity)
	}
	p := config.NewProfile("default", stateDir)
	s, err := db.Open(context.Background(), db.OptionsFor(p))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for node, token := range acked {
		if v, err := s.Verify(context.Background(), node, token); err != nil || !v.OK {
			t.Fatalf("approval of %s was acknowledged before a kill and is lost (%v)", node, err)
		}
	}
	// The client loops without pause, so a call is nearly always in flight;
	// a series where no kill hit one would have tested nothing.
	if inFlightAtKill == 0 {
		t.Fatalf("none of %d kills landed while a call was in flight", cycles)
	}
	t.Logf("%d kills, %d with a call in flight; all %d acknowledged approvals survived and verify", cycles, inFlightAtKill, len(acked))
}

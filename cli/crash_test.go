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

func TestKilledServerKeepsAcknowledgedApprovals(t *testing.T) {
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	stateDir := filepath.Join(t.TempDir(), "gw")
	acked := map[string]string{} // node → token the client saw acknowledged
	var mu sync.Mutex
	for c := range cycles {
		cmd, url := startServerProcess(t, stateDir)
		token, err := config.ReadTokenFile(filepath.Join(stateDir, "nodes", "operator.token"))
		if err != nil {
			t.Fatal(err)
		}
		api := url + "/api/v1/profiles/default"
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // approvals as fast as they are answered
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				node := fmt.Sprintf("c%d-n%d", c, i)
				resp, err := post(api+"/requests", token, `{"nodeId":"`+node+`"}`)
				if err != nil {
					return
				}
				var req db.RequestResult
				json.NewDecoder(resp.Body).Decode(&req)
				resp.Body.Close()
				resp, err = post(api+"/requests/"+req.Request.RequestID+"/approve", token, "")
				if err != nil {
					return
				}
				var a db.Approval
				err = json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				if err == nil && resp.StatusCode == 200 {
					mu.Lock()
					acked[node] = a.Node.Token
					mu.Unlock()
				}
			}
		}()
		time.Sleep(time.Duration(rand.IntN(40_000)) * time.Microsecond)
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
	if len(acked) < cycles/2 {
		t.Fatalf("only %d approvals acknowledged over %d cycles: the test did not exercise the server", len(acked), cycles)
	}
	t.Logf("%d kills; all %d acknowledged approvals survived and verify", cycles, len(acked))
}

package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/server/webhook"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw6iUOYbVjMfo="

// hookReceiver records every delivery: webhook-id and body, in arrival order.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	ids  []string
	body map[string]string
	// hold, when set, is called before answering and may block.
	hold func(id string)
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{body: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		id := req.Header.Get("webhook-id")
		r.mu.Lock()
		if prev, seen := r.body[id]; seen && prev != string(b) {
			t.Errorf("webhook-id %s came with two bodies:\n%s\n%s", id, prev, b)
		}
		r.ids = append(r.ids, id)
		r.body[id] = string(b)
		hold := r.hold
		r.mu.Unlock()
		if hold != nil {
			hold(id)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

func writeHookConfig(t *testing.T, dir, stateDir, url string) string {
	path := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s\n    webhooks:\n      - url: %s\n        secret: %s\n", stateDir, url, hookSecret)), 0o600)
	return path
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhooksCommands(t *testing.T) {
	rcv := newHookReceiver(t)
	dir := t.TempDir()
	hookURL := rcv.srv.URL + "/pairgate"
	srv := startServe(t, testEnv(t, nil), "--config", writeHookConfig(t, dir, dir+"/gw", hookURL))
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": dir + "/gw", "PAIRGATE_URL": srv.url})
	id := config.Webhook{URL: hookURL}.ID()
	step := func(name string, wantCode int, args ...string) string {
		t.Helper()
		code, out, errs := cliRun(getenv, args...)
		if code != wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, code, wantCode, out, errs)
		}
		got := strings.ReplaceAll(normalize(out+errs), id, "wh_<id>")
		got = strings.ReplaceAll(got, rcv.srv.Listener.Addr().String(), "127.0.0.1:<port>")
		golden(t, "webhooks-"+name, looseRE.ReplaceAllString(got, " "))
		return out
	}
	request(t, srv.url, getenv, `{"nodeId":"kitchen-ipad"}`)
	request(t, srv.url, getenv, `{"nodeId":"pixel-8"}`)
	waitFor(t, "both events delivered", func() bool {
		var states []webhook.State
		_, out, _ := cliRun(getenv, "webhooks", "list", "--json")
		json.Unmarshal([]byte(out), &states)
		return len(states) == 1 && states[0].Cursor == 2
	})
	step("01-list", 0, "webhooks", "list")
	step("02-list-json", 0, "webhooks", "list", "--json")
	step("03-redeliver-from", 0, "webhooks", "redeliver", id, "--from", "1")
	waitFor(t, "events 1 and 2 delivered again", func() bool { return slices.Equal(rcv.received(), []string{"1", "2", "1", "2"}) })
	step("04-redeliver-unknown", 1, "webhooks", "redeliver", "wh_nope")
	step("05-redeliver-no-id", 2, "webhooks", "redeliver")
	step("06-no-command", 2, "webhooks")
	step("07-bad-from", 1, "webhooks", "redeliver", id, "--from", "99")
	step("08-from-zero", 2, "webhooks", "redeliver", id, "--from", "0")
}

func TestServeRefusesABadWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(path, []byte("profiles:\n  - name: default\n    stateDir: "+dir+"\n    webhooks:\n      - url: https://hooks.example/x\n        secretFile: "+dir+"/missing\n"), 0o600)
	code, _, errs := cliRun(testEnv(t, nil), "serve", "--listen", "127.0.0.1:0", "--config", path)
	want := "pairgate: config " + path + ": profiles[0].webhooks[0].secretFile: " + dir + "/missing cannot be read (no such file or directory)"
	if code != exitConfig || !strings.HasPrefix(errs, want) {
		t.Fatalf("exit %d, stderr %q\nwant 78 and %q", code, errs, want)
	}
}

// An operator tokenFile the server cannot use is bad configuration (exit
// 78), named by its key, as a webhook's secretFile is.
func TestServeRefusesAnUnusableTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pairgate.yaml")
	tokenFile := filepath.Join(dir, "operator.token")
	os.WriteFile(path, []byte("profiles:\n  - name: default\n    stateDir: "+dir+"/state\n    tokenFile: "+tokenFile+"\n"), 0o600)
	for _, c := range []struct {
		name, content, want string
	}{
		{"missing", "", tokenFile + " cannot be read (no such file or directory)"},
		{"empty", " \n", tokenFile + " is empty; put the operator token in it"},
	} {
		if c.name != "missing" {
			os.WriteFile(tokenFile, []byte(c.content), 0o600)
		}
		code, _, errs := cliRun(testEnv(t, nil), "serve", "--listen", "127.0.0.1:0", "--config", path)
		want := "pairgate: config " + path + ": profiles[0].tokenFile: " + c.want
		if code != exitConfig || !strings.HasPrefix(errs, want) {
			t.Fatalf("%s: exit %d, stderr %q\nwant 78 and %q", c.name, code, errs, want)
		}
	}
}

// A SIGKILL while an event is being delivered loses nothing: after the
// restart the receiver gets that event again, with the same webhook-id
// and body, and then the rest, in order.
func TestKilledServerRedeliversTheWebhookInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	rcv := newHookReceiver(t)
	var once sync.Once
	rcv.hold = func(id string) {
		if id == "3" {
			once.Do(func() { close(entered); <-release })
		}
	}
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "gw")
	t.Setenv("PAIRGATE_CONFIG", writeHookConfig(t, dir, stateDir, rcv.srv.URL+"/hook"))

	cmd, url := startServerProcess(t, stateDir)
	token, err := config.ReadTokenFile(filepath.Join(stateDir, "nodes", "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	api := url + "/api/v1/profiles/default"
	for i := range 3 {
		resp, err := post(api+"/requests", token, fmt.Sprintf(`{"nodeId":"n%d"}`, i))
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("request: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	select {
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatalf("event 3 never reached the receiver; got %v", rcv.received())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(release) // the answer goes to a dead process

	cmd, url = startServerProcess(t, stateDir)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	resp, err := post(url+"/api/v1/profiles/default/requests", token, `{"nodeId":"after-restart"}`)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("request after restart: %v %v", err, resp)
	}
	resp.Body.Close()
	// A kill -9 on a running machine loses nothing the process committed
	// (its lazy commits are in the page cache), so seqs go on without a
	// gap: the new event is 4.
	want := []string{"1", "2", "3", "3", "4"}
	waitFor(t, "event 3 redelivered, then the new one", func() bool { return len(rcv.received()) >= len(want) })
	if got := rcv.received(); !slices.Equal(got, want) {
		t.Fatalf("webhook-ids %v, want %v", got, want)
	}
}

// webhooks list says when an endpoint lost events to retention: here one
// that cannot be reached while its only event is pruned after a second.
func TestWebhooksListSaysWhatRetentionPruned(t *testing.T) {
	dir := t.TempDir()
	closed := httptest.NewServer(http.NotFoundHandler())
	hookURL := closed.URL + "/gone"
	closed.Close() // nothing listens there now
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s\n    sweepInterval: 20ms\n    retention:\n      events: 1s\n    webhooks:\n      - url: %s\n        secret: %s\n",
		dir+"/gw", hookURL, hookSecret)), 0o600)
	srv := startServe(t, testEnv(t, nil), "--config", cfg)
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": dir + "/gw", "PAIRGATE_URL": srv.url})
	request(t, srv.url, getenv, `{"nodeId":"kitchen-ipad"}`)
	waitFor(t, "the event pruned undelivered", func() bool {
		var states []webhook.State
		_, out, _ := cliRun(getenv, "webhooks", "list", "--json")
		json.Unmarshal([]byte(out), &states)
		return len(states) == 1 && states[0].Undelivered == 1
	})
	code, out, errs := cliRun(getenv, "webhooks", "list")
	id := config.Webhook{URL: hookURL}.ID()
	if want := id + " fell behind retention.events: 1 event was pruned before delivery and will never be sent"; code != 0 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want %q in:\n%s%s", code, want, out, errs)
	}
}

package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
)

// lineWriter collects output and lets a test wait for a line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
	part  []byte
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 1000)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		select {
		case w.lines <- string(w.part[:i]):
		default:
		}
		w.part = w.part[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// testEnv is a process environment rooted in a temporary HOME.
func testEnv(t *testing.T, vars map[string]string) func(string) string {
	home := t.TempDir()
	return func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		if k == "HOME" {
			return home
		}
		return ""
	}
}

// running is a `pairgate serve` started in-process on 127.0.0.1:0.
type running struct {
	url    string
	stderr *lineWriter
	cancel context.CancelFunc
	done   chan int
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func startServe(t *testing.T, getenv func(string) string, extra ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stderr: newLineWriter(), cancel: cancel, done: make(chan int, 1)}
	args := append([]string{"serve", "--listen", "127.0.0.1:0"}, extra...)
	go func() { r.done <- Run(ctx, args, getenv, strings.NewReader(""), io.Discard, r.stderr) }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line := <-r.stderr.lines:
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				r.url = "http://" + m[1]
				t.Cleanup(func() { r.stop(t) })
				return r
			}
		case code := <-r.done:
			cancel()
			t.Fatalf("serve exited with %d before listening:\n%s", code, r.stderr)
		case <-deadline:
			cancel()
			t.Fatalf("serve did not start listening:\n%s", r.stderr)
		}
	}
}

// stop sends what SIGTERM would (cancel) and waits for a clean exit.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	r.wait(t)
}

// wait waits for a serve told to stop to exit, with 0.
func (r *running) wait(t *testing.T) {
	t.Helper()
	select {
	case code := <-r.done:
		if code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop:\n%s", r.stderr)
	}
}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

func TestServeEndToEnd(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	srv := startServe(t, getenv)

	var ready struct {
		OK       bool              `json:"ok"`
		Profiles map[string]string `json:"profiles"`
	}
	if code := getJSON(t, srv.url+"/readyz", &ready); code != 200 || !ready.OK || ready.Profiles["default"] != "ok" {
		t.Fatalf("readyz = %d %+v", code, ready)
	}
	var health map[string]bool
	if code := getJSON(t, srv.url+"/healthz", &health); code != 200 || !health["ok"] {
		t.Fatalf("healthz = %d %v", code, health)
	}
	var notFound struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if code := getJSON(t, srv.url+"/no-such-route", &notFound); code != 404 || notFound.Error.Code != "not_found" {
		t.Fatalf("unknown route = %d %+v", code, notFound)
	}

	// The state directory is laid out as specified, owner-only.
	for name, mode := range map[string]os.FileMode{
		"nodes": 0o700 | os.ModeDir, "nodes/pairing.sqlite": 0o600, "nodes/pairing.key": 0o600,
		"nodes/operator.token": 0o600, "nodes/pairing.lock": 0o600,
	} {
		st, err := os.Stat(filepath.Join(stateDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode(), mode)
		}
	}
	// The log names the token file and never the token.
	token, _ := os.ReadFile(filepath.Join(stateDir, "nodes", "operator.token"))
	if len(bytes.TrimSpace(token)) != 43 {
		t.Fatalf("operator token %q", token)
	}
	if strings.Contains(srv.stderr.String(), strings.TrimSpace(string(token))) {
		t.Fatalf("the operator token reached the log")
	}

	// A second server on the same state directory is refused at once.
	var stderr bytes.Buffer
	code := Run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, getenv, nil, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), stateDir+" is already served by process") {
		t.Fatalf("second serve = %d: %s", code, stderr.String())
	}

	srv.stop(t)
	if !strings.Contains(srv.stderr.String(), "msg=stopped") {
		t.Fatalf("no clean stop in log:\n%s", srv.stderr)
	}
	// After a clean stop the lock is free again.
	srv = startServe(t, getenv)
	srv.stop(t)
}

func TestServeTwoProfilesFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
profiles:
  - name: default
    stateDir: %s/a
  - name: work
    stateDir: %s/b
    token: work-token-0123456789
    ttl: 10m
`, dir, dir)), 0o600)
	srv := startServe(t, testEnv(t, nil), "--config", cfg)
	var ready struct {
		Profiles map[string]string `json:"profiles"`
	}
	getJSON(t, srv.url+"/readyz", &ready)
	if ready.Profiles["default"] != "ok" || ready.Profiles["work"] != "ok" {
		t.Fatalf("readyz profiles %v", ready.Profiles)
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "nodes", "operator.token")); !os.IsNotExist(err) {
		t.Fatalf("a configured token must not be written to operator.token (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "nodes", "pairing.sqlite")); err != nil {
		t.Fatal(err)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "profiles:\n  - name: x\n    tll: 5m\n", "profiles[0].tll: unknown key (line 3)"},
		{"bad duration", "profiles:\n  - name: x\n    ttl: five\n", `profiles[0].ttl: "five" is not a duration; write e.g. 300s, 5m or 168h`},
		{"bad listen", "listen: nowhere\n", `listen: "nowhere" is not a host:port address`},
		{"duplicate profile", "profiles:\n  - name: a\n    stateDir: /tmp/x\n  - name: a\n    stateDir: /tmp/y\n", `profiles[1].name: profile "a" is declared twice`},
		{"relative state dir", "profiles:\n  - name: a\n    stateDir: rel\n", `profiles[0].stateDir: "rel" is not an absolute path`},
		{"token and file", "profiles:\n  - name: a\n    token: x\n    tokenFile: /y\n", `profiles[0].token: both token and tokenFile are set`},
		{"bad cidr", "profiles:\n  - name: a\n    autoApprove:\n      silentCidrs: [nope]\n", `profiles[0].autoApprove.silentCidrs[0]: "nope" is not an address or CIDR`},
		{"not yaml", "profiles: [\n", "not valid YAML"},
		// The parser names line 1, where the list began; the fix says so.
		{"mis-indented", "profiles:\n  - name: a\n   stateDir: /tmp/x\n", "line 1: did not find expected '-' indicator; the line named may be where the broken block begins"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o600)
			var stderr bytes.Buffer
			code := Run(context.Background(), []string{"serve", "--config", path}, testEnv(t, nil), nil, io.Discard, &stderr)
			if code != exitConfig || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), path) {
				t.Fatalf("exit %d, stderr %q; want 78 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}

func TestServeRefusesNewerSchema(t *testing.T) {
	stateDir := t.TempDir()
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	if code := Run(context.Background(), []string{"migrate"}, getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("migrate exit %d", code)
	}
	// A later pairgate recorded a migration this one does not know.
	raw, err := sql.Open("sqlite", db.DSN(filepath.Join(stateDir, "nodes", "pairing.sqlite"), false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (424242, 1)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	var stderr bytes.Buffer
	code := Run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, getenv, nil, io.Discard, &stderr)
	if code != 78 || !strings.Contains(stderr.String(), "schema version 424242") {
		t.Fatalf("serve on a newer schema = %d: %s", code, stderr.String())
	}
	// migrate --status lists what it knows and exits 78 too.
	var out bytes.Buffer
	stderr.Reset()
	code = Run(context.Background(), []string{"migrate", "--status"}, getenv, nil, &out, &stderr)
	if code != 78 || !strings.Contains(out.String(), "newer ones this pairgate does not know") || !strings.Contains(stderr.String(), "schema version 424242") {
		t.Fatalf("migrate --status on a newer schema = %d:\n%s%s", code, out.String(), stderr.String())
	}
	got := regexp.MustCompile(`applied \S+`).ReplaceAllString(out.String()+stderr.String(), "applied <time>")
	golden(t, "migrate-status-newer-schema", strings.ReplaceAll(got, stateDir, "<stateDir>"))
}

func TestMigrateStatusAndHelp(t *testing.T) {
	stateDir := t.TempDir()
	getenv := testEnv(t, nil)
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"migrate", "--status", "--state-dir", stateDir}, getenv, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "No database") {
		t.Fatalf("status before = %d %q", code, out.String())
	}
	out.Reset()
	if code := Run(context.Background(), []string{"migrate", "--state-dir", stateDir}, getenv, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "00001_pairing.sql") || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate = %d %q", code, out.String())
	}
	if code := Run(context.Background(), []string{"migrate", "--bogus"}, getenv, nil, io.Discard, io.Discard); code != exitUsage {
		t.Fatalf("bad flag exit %d, want 2", code)
	}
	if code := Run(context.Background(), []string{"frobnicate"}, getenv, nil, io.Discard, io.Discard); code != exitUsage {
		t.Fatalf("unknown command exit %d, want 2", code)
	}
	out.Reset()
	if code := Run(context.Background(), []string{"help"}, getenv, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "serve") {
		t.Fatalf("help = %d %q", code, out.String())
	}
	out.Reset()
	files, _ := filepath.Glob("../migrations/0*.sql") // NNNNN_what.sql, numbered from 1 without a gap
	if code := Run(context.Background(), []string{"version"}, getenv, nil, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "pairgate ") ||
		!strings.Contains(out.String(), fmt.Sprintf("database schema %d)", len(files))) {
		// The schema is what an operator rolling back needs to match.
		t.Fatalf("version = %d %q", code, out.String())
	}
}

func TestMigrateProfileFlagUsesOpenClawConvention(t *testing.T) {
	getenv := testEnv(t, nil)
	if code := Run(context.Background(), []string{"migrate", "--profile", "work"}, getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("migrate exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(getenv("HOME"), ".openclaw-work", "nodes", "pairing.sqlite")); err != nil {
		t.Fatalf("--profile work must use ~/.openclaw-work: %v", err)
	}
}

// TestServeStartErrors: each way serve can fail before serving names its
// cause and fix, exits with the documented code, and a taken port leaves
// the state directory untouched.
func TestServeStartErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	for _, c := range []struct {
		name string
		code int
		args []string
	}{
		{"serve-01-listen-not-an-address", 2, []string{"serve", "--listen", "foo"}},
		{"serve-02-config-missing", 78, []string{"serve", "--config", filepath.Join(stateDir, "nope.yaml")}},
		{"serve-03-port-in-use", 1, []string{"serve", "--listen", taken.Addr().String()}},
		{"serve-04-listen-port-out-of-range", 2, []string{"serve", "--listen", "127.0.0.1:80000"}},
	} {
		code, out, errs := cliRun(getenv, c.args...)
		if code != c.code {
			t.Fatalf("%s: exit %d, want %d\n%s%s", c.name, code, c.code, out, errs)
		}
		got := strings.ReplaceAll(strings.ReplaceAll(out+errs, stateDir, "<stateDir>"), taken.Addr().String(), "<addr>")
		golden(t, c.name, got)
	}
	if _, err := os.Stat(stateDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a serve that could not start touched its state directory: %v", err)
	}
}

// With a configuration file, $OPENCLAW_STATE_DIR (which the README has
// operators set to point CLI commands at a gateway) does not move the
// file's default profile: a serve started from such a shell served
// default empty from that directory. It warns that the variable names
// a directory no profile serves.
func TestServeWithAFileIgnoresOPENCLAW_STATE_DIR(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte("profiles:\n  - name: default\n  - name: work\n"), 0o600)
	getenv := testEnv(t, map[string]string{"HOME": home, "OPENCLAW_STATE_DIR": filepath.Join(home, ".openclaw-other")})
	srv := startServe(t, getenv, "--config", cfg)
	logs := srv.stderr.String()
	if !strings.Contains(logs, "profile=default stateDir="+filepath.Join(home, ".openclaw")+" ") ||
		!strings.Contains(logs, "$OPENCLAW_STATE_DIR names a directory no profile of the configuration serves") {
		t.Fatalf("serve with a file and $OPENCLAW_STATE_DIR:\n%s", logs)
	}
	srv.stop(t)
	// The variable naming a served profile's directory is no surprise.
	other := startServe(t, testEnv(t, map[string]string{"HOME": home, "OPENCLAW_STATE_DIR": filepath.Join(home, ".openclaw-work")}), "--config", cfg)
	if logs := other.stderr.String(); strings.Contains(logs, "OPENCLAW_STATE_DIR names") {
		t.Fatalf("a warning for a served directory:\n%s", logs)
	}
}

// A taken address is named with the setting that moves it: --listen for
// the main one, the profile's listen key for a profile's own (--listen
// was suggested for both, and cannot move the second).
func TestServeNamesTheSettingOfATakenAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/gw\n  - name: work\n    stateDir: %s/work\n    listen: %s\n", dir, dir, taken.Addr())), 0o600)
	code, _, errs := cliRun(testEnv(t, nil), "serve", "--config", cfg, "--listen", "127.0.0.1:0")
	if code != exitFailed || !strings.Contains(errs, "cannot listen on "+taken.Addr().String()+": the address is in use") ||
		!strings.Contains(errs, `choose another address with profile "work"'s listen in the configuration`) {
		t.Fatalf("a profile's own address taken: exit %d\n%s", code, errs)
	}
	main, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	code, _, errs = cliRun(testEnv(t, nil), "serve", "--config", cfg, "--listen", main.Addr().String())
	if code != exitFailed || !strings.Contains(errs, "choose another address with --listen or $PAIRGATE_LISTEN") {
		t.Fatalf("the main address taken: exit %d\n%s", code, errs)
	}
}

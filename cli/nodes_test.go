package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/fixture"
)

var update = flag.Bool("update", false, "rewrite the golden files of the CLI tests")

// normalize replaces what differs from run to run: request ids, tokens,
// times.
func normalize(s string) string {
	for _, r := range []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`), "<request-id------------------------>"},
		{regexp.MustCompile(`"[A-Za-z0-9_-]{43}"`), `"<token>"`},
		{regexp.MustCompile(`\b1[0-9]{12}\b`), "<ms>"},
		{regexp.MustCompile(`\b[0-9]s ago\b`), "Ns ago"},
		{regexp.MustCompile(`at 20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z`), "at <time>"},
	} {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return s
}

// cliRun runs the CLI entry point and returns code, stdout, stderr.
func cliRun(getenv func(string) string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, getenv, nil, &out, &errb)
	return code, out.String(), errb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "nodes", name+".golden")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte(got), 0o644)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

// twoProfiles starts one server for two gateways and returns each one's
// environment: the CLI is pointed at a profile by OPENCLAW_STATE_DIR alone.
func twoProfiles(t *testing.T) (string, func(string) string, func(string) string) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/home\n  - name: work\n    stateDir: %s/work\n", dir, dir)), 0o600)
	srv := startServe(t, testEnv(t, nil), "--config", cfg)
	envFor := func(stateDir string) func(string) string {
		return testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir, "PAIRGATE_URL": srv.url})
	}
	return srv.url, envFor(dir + "/home"), envFor(dir + "/work")
}

// request asks to pair a node over REST, as a node's helper would.
func request(t *testing.T, url string, getenv func(string) string, body string) string {
	t.Helper()
	token, _ := os.ReadFile(filepath.Join(getenv("OPENCLAW_STATE_DIR"), "nodes", "operator.token"))
	profile := "default"
	if strings.HasSuffix(getenv("OPENCLAW_STATE_DIR"), "/work") {
		profile = "work"
	}
	req, _ := http.NewRequest("POST", url+"/api/v1/profiles/"+profile+"/requests", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("request: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var res struct {
		Request struct{ RequestID string }
	}
	json.NewDecoder(resp.Body).Decode(&res)
	return res.Request.RequestID
}

// loose collapses runs of spaces and rules, for tables whose widths
// depend on a temporary directory's name.
var looseRE = regexp.MustCompile(`[ ─]+`)

func TestNodesCommands(t *testing.T) {
	url, home, work := twoProfiles(t)
	dir := filepath.Dir(home("OPENCLAW_STATE_DIR"))
	step := func(name string, wantCode int, getenv func(string) string, args ...string) string {
		t.Helper()
		code, out, errs := cliRun(getenv, args...)
		if code != wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, code, wantCode, out, errs)
		}
		got := normalize(out + errs)
		if strings.Contains(got, dir) {
			got = looseRE.ReplaceAllString(strings.ReplaceAll(got, dir, "<dir>"), " ")
		}
		golden(t, name, got)
		if strings.Contains(strings.Join(args, " "), "--json") && wantCode == 0 && !json.Valid([]byte(out)) {
			t.Fatalf("%s: --json printed something other than JSON:\n%s", name, out)
		}
		return out
	}

	step("01-pending-empty", 0, home, "nodes", "pending")
	kitchen := request(t, url, home, `{"nodeId":"88a48acd09bad5544c01dfdcb514b766021b0cb29f92866f2538523815431078","displayName":"Kitchen iPad","platform":"iOS","version":"2026.1.29","deviceFamily":"iPad","modelIdentifier":"iPad13,4","caps":["canvas","camera"],"remoteIp":"192.0.2.10"}`)
	time.Sleep(5 * time.Millisecond) // distinct ts: equal ones are ordered by their random ids
	pixel := request(t, url, home, `{"nodeId":"android-node-b","displayName":"Pixel 8","platform":"Android","silent":true}`)
	step("02-pending", 0, home, "nodes", "pending")
	step("03-pending-json", 0, home, "nodes", "pending", "--json")
	step("04-list", 0, home, "nodes", "list")
	// An id's beginning, or a node's name, for a request id: the error
	// says which request was meant (a CLI trial got "unknown requestId").
	if code, _, errs := cliRun(home, "nodes", "approve", pixel[:8]); code != 1 || !strings.Contains(errs, "give the whole id: "+pixel) {
		t.Fatalf("approve by an id's beginning: exit %d %s", code, errs)
	}
	if code, _, errs := cliRun(home, "nodes", "reject", "pixel 8"); code != 1 || !strings.Contains(errs, "that names a node; its pending request is "+pixel) {
		t.Fatalf("reject by a node's name: exit %d %s", code, errs)
	}
	step("05-approve", 0, home, "nodes", "approve", kitchen)
	step("06-reject", 0, home, "nodes", "reject", pixel, "--json")
	step("07-approve-again", 1, home, "nodes", "approve", kitchen)
	step("08-reject-unknown", 1, home, "nodes", "reject", "does-not-exist")
	step("09-list-json", 0, home, "nodes", "list", "--json")
	step("10-status", 0, home, "nodes", "status")
	step("11-status-json", 0, home, "nodes", "status", "--json")
	step("12-rename-by-name", 0, home, "nodes", "rename", "--node", "kitchen ipad", "--name", "Living Room iPad")
	step("13-rename-by-prefix-json", 0, home, "nodes", "rename", "--node", "88a48a", "--name", "  Den iPad  ", "--json")
	step("14-rename-unknown", 1, home, "nodes", "rename", "--node", "minimal-node-c", "--name", "X")
	step("14b-rename-short-prefix", 1, home, "nodes", "rename", "--node", "88a4", "--name", "X")
	step("15-describe", 0, home, "nodes", "describe", "--node", "DEN-IPAD")
	step("16-describe-json", 0, home, "nodes", "describe", "--node", "192.0.2.10", "--json")
	step("17-profiles", 0, home, "profiles")
	step("18-profiles-json", 0, home, "profiles", "--json")

	// The same commands act on the other profile with only
	// OPENCLAW_STATE_DIR changed.
	step("19-work-pending-empty", 0, work, "nodes", "pending")
	request(t, url, work, `{"nodeId":"work-laptop"}`)
	step("20-work-pending", 0, work, "nodes", "pending")
	step("21-home-pending-unchanged", 0, home, "nodes", "pending")

	// Another device taking the paired node's name in look-alike letters
	// (a Cyrillic і and а) is told apart from the node's own repair.
	copycat := request(t, url, home, `{"nodeId":"copycat","displayName":"Den \u0456P\u0430d"}`)
	step("21b-pending-lookalike", 0, home, "nodes", "pending")
	if code, _, errs := cliRun(home, "nodes", "reject", copycat); code != 0 {
		t.Fatalf("reject the look-alike: exit %d %s", code, errs)
	}

	step("22-remove", 0, home, "nodes", "remove", "--node", "Den iPad")
	step("23-status-after-remove", 0, home, "nodes", "status")

	// Usage errors exit 2.
	step("24-approve-without-id", 2, home, "nodes", "approve")
	step("25-rename-without-name", 2, home, "nodes", "rename", "--node", "x")
	step("26-unknown-command", 2, home, "nodes", "frobnicate")
}

// workToken is the operator token of profile work in startWorkServer.
const workToken = "work-operator-token-0123456789abcdef"

// startWorkServer serves two profiles from dir: default (its token
// generated in dir/home) and work (workToken), configured in cfg.
func startWorkServer(t *testing.T) (dir, cfg string, srv *running) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/home\n  - name: work\n    stateDir: %s/work\n    token: %s\n", dir, dir, workToken)), 0o600)
	return dir, cfg, startServe(t, testEnv(t, nil), "--config", cfg)
}

// An address locked out of listing the profiles (wrong tokens tried
// against all of them, as a CLI with a stale token does) still reaches a
// profile named with --profile and its right token: each profile counts
// its own failures.
func TestCLINamedProfileAfterListLockout(t *testing.T) {
	_, _, srv := startWorkServer(t)
	env := testEnv(t, map[string]string{"PAIRGATE_URL": srv.url})
	for range 10 {
		if code, _, _ := cliRun(env, "nodes", "pending", "--token", "a-stale-token-0123456789abcdef"); code != 1 {
			t.Fatalf("a stale token: exit %d, want 1", code)
		}
	}
	code, out, errs := cliRun(env, "nodes", "pending", "--token", workToken)
	if code != 1 || !strings.Contains(errs, "too many failed attempts") || !strings.Contains(errs, "--profile NAME") {
		t.Fatalf("profile by token after the lockout: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cliRun(env, "nodes", "pending", "--profile", "work", "--token", workToken)
	if code != 0 || !strings.Contains(out, "No pending pairing requests.") {
		t.Fatalf("--profile work with its token after the lockout: exit %d\n%s%s", code, out, errs)
	}
}

// TestCLIAgainstAnyServer points the CLI at a server whose state
// directories are not the local ones (a container, another host): the
// profile is named with --profile, taken from a /ws/NAME URL, or is the
// only one the token opens; the token comes from $PAIRGATE_CONFIG; and
// every refusal names its real cause.
func TestCLIAgainstAnyServer(t *testing.T) {
	dir, cfg, srv := startWorkServer(t)
	host := strings.TrimPrefix(srv.url, "http://")
	resp, err := post(srv.url+"/api/v1/profiles/work/requests", workToken, `{"nodeId":"work-laptop","platform":"linux"}`)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("request: %v %v", err, resp)
	}
	resp.Body.Close()

	// The CLI's machine: its own HOME, where nothing is served.
	local := func(vars map[string]string) func(string) string { return testEnv(t, vars) }
	elsewhere := filepath.Join(dir, "elsewhere")
	os.MkdirAll(filepath.Join(elsewhere, "nodes"), 0o700)
	os.WriteFile(filepath.Join(elsewhere, "nodes", "operator.token"), []byte("a-token-no-profile-has-0123456789abc\n"), 0o600)
	for _, c := range []struct {
		name string
		code int
		env  func(string) string
		args []string
	}{
		{"any-01-profile-by-name", 0, local(nil), []string{"nodes", "pending", "--profile", "work", "--url", srv.url, "--token", workToken}},
		{"any-02-token-from-config-ws-url", 0, local(map[string]string{"PAIRGATE_CONFIG": cfg}), []string{"nodes", "pending", "--profile", "work", "--url", "ws://" + host}},
		{"any-03-profile-from-ws-path", 0, local(map[string]string{"PAIRGATE_CONFIG": cfg}), []string{"nodes", "pending", "--url", "ws://" + host + "/ws/work"}},
		{"any-04-the-only-profile-of-the-token", 0, local(map[string]string{"PAIRGATE_URL": srv.url, "OPENCLAW_GATEWAY_TOKEN": workToken}), []string{"nodes", "pending"}},
		{"any-05-unknown-profile-name", 1, local(map[string]string{"PAIRGATE_URL": srv.url}), []string{"nodes", "pending", "--profile", "nope", "--token", workToken}},
		{"any-06-state-dir-not-served", 1, local(map[string]string{"PAIRGATE_URL": srv.url, "OPENCLAW_STATE_DIR": elsewhere}), []string{"nodes", "pending"}},
		{"any-07-state-dir-not-served-good-token", 1, local(map[string]string{"PAIRGATE_URL": srv.url, "OPENCLAW_STATE_DIR": elsewhere}), []string{"nodes", "pending", "--token", workToken}},
		{"any-08-wrong-token", 1, local(map[string]string{"PAIRGATE_URL": srv.url}), []string{"nodes", "pending", "--profile", "work", "--token", "wrong"}},
		{"any-09-no-token-anywhere", 1, local(map[string]string{"PAIRGATE_URL": srv.url, "OPENCLAW_STATE_DIR": filepath.Join(dir, "empty")}), []string{"nodes", "pending"}},
		{"any-10-server-down", 1, local(map[string]string{"OPENCLAW_GATEWAY_TOKEN": "x"}), []string{"nodes", "pending", "--url", "http://127.0.0.1:1"}},
		{"any-11-bad-url", 2, local(map[string]string{"OPENCLAW_GATEWAY_TOKEN": "x"}), []string{"nodes", "pending", "--url", "ftp://127.0.0.1:1"}},
		{"any-12-unknown-flag", 2, local(nil), []string{"nodes", "pending", "--bogus"}},
		{"any-13-help", 0, local(nil), []string{"nodes", "pending", "--help"}},
		{"any-14-health-help", 0, local(nil), []string{"health", "--help"}},
		{"any-15-health-ws-url", 0, local(nil), []string{"health", "--url", "ws://" + host}},
	} {
		code, out, errs := cliRun(c.env, c.args...)
		if code != c.code {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.name, code, c.code, out, errs)
		}
		got := strings.ReplaceAll(normalize(out+errs), host, "<host>")
		if strings.Contains(got, dir) {
			got = looseRE.ReplaceAllString(strings.ReplaceAll(got, dir, "<dir>"), " ")
		}
		golden(t, c.name, got)
	}
}

func TestResolveNode(t *testing.T) {
	nodes := []nodeEntry{
		{NodeID: "88a48acd09bad554", NodeMeta: db.NodeMeta{DisplayName: "Kitchen iPad (ws)", RemoteIP: "192.0.2.10"}},
		{NodeID: "88a48aff00000000", NodeMeta: db.NodeMeta{DisplayName: "Hall"}},
		{NodeID: "minimal-node-c"},
		{NodeID: "fire-node", NodeMeta: db.NodeMeta{DisplayName: "🔥🔥"}}, // no letter or digit
	}
	for _, tc := range []struct{ q, want, err string }{
		// A query of no letter or digit matches no name (a CLI trial's
		// `nodes remove --node "  "` removed the node named 🔥🔥).
		{"🔥🔥", "fire-node", ""}, // its exact name
		{"  ", "", "unknown node:"},
		{"-", "", "unknown node:"},
		{"...", "", "unknown node:"},
		{"88a48acd09bad554", "88a48acd09bad554", ""},
		{"192.0.2.10", "88a48acd09bad554", ""},
		{"kitchen ipad ws", "88a48acd09bad554", ""},
		{"KITCHEN-IPAD-(WS)", "88a48acd09bad554", ""},
		{"88a48ac", "88a48acd09bad554", ""},
		{"minimax", "", "unknown node: minimax"},
		{"88a48a", "", "ambiguous node: 88a48a matches Kitchen iPad (ws) (88a48acd09bad554), Hall (88a48aff00000000)"},
		{"88a48", "", "unknown node: 88a48 (an id prefix needs 6 or more characters;"},
		{"zz", "", "unknown node: zz (known:"},
	} {
		n, err := resolveNode(nodes, tc.q)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.q, err, tc.err)
			}
			continue
		}
		if err != nil || n.NodeID != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.q, n.NodeID, err, tc.want)
		}
	}
}

func TestTablesFitTheWidth(t *testing.T) {
	const id = "88a48acd09bad5544c01dfdcb514b766021b0cb29f92866f2538523815431078"
	var b bytes.Buffer
	table(&b, 40, []string{"Node", "ID"}, [][]string{{"Kitchen iPad (ws)", id}})
	var ids strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if n := textWidth(line); n > 40 {
			t.Fatalf("line of %d columns in a 40-wide table:\n%s", n, b.String())
		}
		if cells := strings.Split(line, "│"); len(cells) == 4 {
			ids.WriteString(strings.TrimSpace(cells[2]))
		}
	}
	if ids.String() != "ID"+id {
		t.Fatalf("wrapped cells lost text: %q\n%s", ids.String(), b.String())
	}
}

// A CLI trial: a request id wrapped mid-UUID could not be copied, and a
// name in CJK or emoji put every border after it out of line. Ids keep
// their width while other columns can give, and widths are terminal
// columns.
func TestTablesKeepIdsWholeAndAlignWideText(t *testing.T) {
	const id = "ed35d0cd-72e5-4847-8691-2915200c68c0"
	var b bytes.Buffer
	table(&b, 80, []string{"Request", "Node", "Platform"}, [][]string{
		{id, "台所のアイパッド全角テスト and a long name that has to wrap somewhere", "iOS"},
		{"r2", "🔥 zero\u200bwidth e\u0301", "Android"},
	})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if !strings.Contains(b.String(), id) {
		t.Fatalf("the request id was wrapped:\n%s", b.String())
	}
	for _, line := range lines {
		if textWidth(line) != textWidth(lines[0]) {
			t.Fatalf("lines of %d and %d columns: the borders are out of line:\n%s", textWidth(line), textWidth(lines[0]), b.String())
		}
	}
	if textWidth("台所") != 4 || textWidth("e\u0301") != 1 || textWidth("a\u200bb") != 2 {
		t.Fatalf("textWidth: %d %d %d", textWidth("台所"), textWidth("e\u0301"), textWidth("a\u200bb"))
	}
}

// A documentation trial: webhooks list wrapped an endpoint's URL inside
// its port, to give room to a long last error.
func TestTablesKeepURLsWholeBesideLongErrors(t *testing.T) {
	const url = "http://127.0.0.1:19220/hooks/pairgate"
	var b bytes.Buffer
	table(&b, 119, []string{"ID", "URL", "Events", "State", "Cursor", "Lag", "Attempts", "Last error"}, [][]string{
		{"wh_3551a7ff58", url, "all", "retrying", "12", "3", "7", "Post \"" + url + "\": dial tcp 127.0.0.1:19220: connect: connection refused, and more words"},
	})
	if !strings.Contains(b.String(), url) {
		t.Fatalf("the URL was wrapped:\n%s", b.String())
	}
}

// nodes list shows when a paired node last connected, connected now or
// not, as OpenClaw's does (it read a live session's connect time only,
// blank for every node not connected), and --json prints node.pair.list.
func TestNodesListShowsLastConnect(t *testing.T) {
	_, home, _ := twoProfiles(t)
	// OpenClaw's files after its node connected once (lastConnectedAtMs).
	from := fixture.Path(t, "snapshots", "03-after-node-connect-and-rename")
	if code, out, errs := cliRun(home, "import", "--from", from); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := cliRun(home, "nodes", "list")
	if code != 0 || !regexp.MustCompile(`│ Living Room iPad +│ 88a48acd\S* +│ 192\.0\.2\.10 +│ \d+d ago +│`).MatchString(out) {
		t.Fatalf("nodes list: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cliRun(home, "nodes", "list", "--json")
	var list struct {
		Pending []map[string]any `json:"pending"`
		Paired  []map[string]any `json:"paired"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list.Paired) != 1 ||
		list.Paired[0]["lastConnectedAtMs"] != float64(1795626777644) || list.Paired[0]["token"] != nil {
		t.Fatalf("nodes list --json: exit %d %v\n%s%s", code, err, out, errs)
	}
}

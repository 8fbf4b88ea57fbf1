package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The CLI words a refusal by the server's error code: a wrong token (code
// unauthorized) names where the token came from; after ten of them the
// address is locked out (code rate_limited) and the server's own message,
// with its wait, is what the operator reads, even with the right token.
func TestCLIWordsRefusalsByCode(t *testing.T) {
	dir := t.TempDir()
	const token = "operator-token-0123456789abcdef0123"
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/gw\n    token: %s\n", dir, token)), 0o600)
	srv := startServe(t, testEnv(t, nil), "--config", cfg)
	getenv := testEnv(t, map[string]string{"PAIRGATE_URL": srv.url})

	for i := range 10 {
		code, _, errs := cliRun(getenv, "nodes", "rename", "--node", "x", "--name", "y", "--profile", "default", "--token", "wrong")
		want := "nodes rename failed: the server at " + srv.url + " refused the operator token read from --token for profile \"default\"; it serves the profiles default\n"
		if code != exitFailed || errs != want {
			t.Fatalf("attempt %d: exit %d\n%s\nwant 1 and\n%s", i+1, code, errs, want)
		}
	}
	code, out, errs := cliRun(getenv, "nodes", "pending", "--profile", "default", "--token", token)
	want := "nodes pending failed: too many failed attempts with a wrong operator token from this address; retry in 300s\n"
	if code != exitFailed || out != "" || errs != want {
		t.Fatalf("locked out: exit %d\nstdout %q\nstderr %q\nwant 1 and %q", code, out, errs, want)
	}
	// health needs no token and is not locked out.
	if code, out, _ := cliRun(getenv, "health"); code != exitOK || !strings.Contains(out, `"default":"ok"`) {
		t.Fatalf("health during the lockout: %d %s", code, out)
	}
}

// An operator trial: with --json a failed command said nothing a script
// could read, and "already approved" looked like "no such request". Its
// stderr is now the REST API's error shape, with the code a script can
// test; stdout stays empty, as OpenClaw's CLI leaves it.
func TestJSONFailuresSayTheirCode(t *testing.T) {
	stateDir := t.TempDir()
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	srv := startServe(t, getenv)
	getenv = testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir, "PAIRGATE_URL": srv.url})
	id := request(t, srv.url, getenv, `{"nodeId":"json-node"}`)
	if code, _, errs := cliRun(getenv, "nodes", "approve", id, "--json"); code != exitOK {
		t.Fatalf("approve = %d %s", code, errs)
	}
	check := func(wantCode string, args ...string) {
		t.Helper()
		code, out, errs := cliRun(getenv, args...)
		var got struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(errs), &got); err != nil || code != exitFailed || got.Error.Code != wantCode || !strings.HasPrefix(got.Error.Message, args[0]+" ") || out != "" {
			t.Fatalf("%v = %d\nstdout %s\nstderr %s\nwant code %s on stderr, nothing on stdout", args, code, out, errs, wantCode)
		}
	}
	check("conflict", "nodes", "approve", id, "--json")
	check("not_found", "nodes", "approve", "00000000-0000-0000-0000-000000000000", "--json")
	check("not_found", "nodes", "remove", "--node", "no-such-node", "--json")
	// A wrong token, with or without the profile named: one code.
	check("unauthorized", "nodes", "pending", "--json", "--token", "a-wrong-token-0123456789abcdef0123")
	check("unauthorized", "nodes", "pending", "--json", "--token", "a-wrong-token-0123456789abcdef0123", "--profile", "default")
	srv.stop(t)
	check("unreachable", "nodes", "pending", "--json")
	check("unreachable", "profiles", "--json")
	// Without --json, the failure is its line.
	if _, out, errs := cliRun(getenv, "nodes", "pending"); out != "" || !strings.HasPrefix(errs, "nodes pending failed: no pairgate answers at ") {
		t.Fatalf("a failure without --json: stdout %q stderr %q", out, errs)
	}
}

// A documentation trial: `import --json` answered a failure in words
// only. It is JSON, with the code, as the nodes commands' failures are.
func TestImportJSONFailuresSayTheirCode(t *testing.T) {
	stateDir := t.TempDir()
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "paired.json"), []byte(`{"n1": {"nodeId": "n2", "token": "t"}}`), 0o600)
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	code, out, errs := cliRun(getenv, "import", "--from", bad, "--json")
	var got struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(errs), &got); err != nil || code != exitFailed || got.Error.Code != "invalid" || !strings.Contains(got.Error.Message, "the legacy files are not valid") || out != "" {
		t.Fatalf("import --json of invalid files = %d\nstdout %s\nstderr %s\nwant code invalid on stderr, nothing on stdout", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "nodes", "pairing.sqlite")); err == nil {
		t.Fatal("a refused import made a database")
	}
	// Without --json, the failure is its line.
	if code, out, errs := cliRun(getenv, "import", "--from", bad); code != exitFailed || out != "" || !strings.HasPrefix(errs, "pairgate: the legacy files are not valid") {
		t.Fatalf("import of invalid files = %d\nstdout %s\nstderr %s", code, out, errs)
	}
}

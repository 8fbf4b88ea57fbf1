package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command chooses its profile the same way: a name (--profile) is
// the configuration's profile of that name; without one, the
// configuration's profile at the chosen state directory, or, with none
// chosen, its profile "default". A name beside --state-dir is refused:
// which one won used to depend on $PAIRGATE_CONFIG.
func TestCommandsChooseTheConfiguredProfile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/home\n  - name: lab\n    stateDir: %s/lab\n  - name: work\n    stateDir: %s/work\n    token: %s\n", dir, dir, dir, workToken)), 0o600)
	env := testEnv(t, map[string]string{"PAIRGATE_CONFIG": cfg})

	// migrate --profile NAME: the configured directory, not ~/.openclaw-NAME.
	if code, out, errs := cliRun(env, "migrate", "--profile", "lab"); code != exitOK {
		t.Fatalf("migrate --profile lab: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "lab", "nodes", "pairing.sqlite")); err != nil {
		t.Fatalf("migrate --profile lab did not migrate the configured state directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(env("HOME"), ".openclaw-lab")); err == nil {
		t.Fatal("migrate --profile lab made ~/.openclaw-lab")
	}

	// No flags: the configuration's profile "default", not ~/.openclaw.
	if code, out, errs := cliRun(env, "migrate"); code != exitOK {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "home", "nodes", "pairing.sqlite")); err != nil {
		t.Fatalf("migrate with no flags did not migrate the configured default profile: %v", err)
	}
	if _, err := os.Stat(filepath.Join(env("HOME"), ".openclaw")); err == nil {
		t.Fatal("migrate with no flags made ~/.openclaw beside a configuration that declares the profile default")
	}

	// A name and --state-dir together: refused, nothing written.
	for _, args := range [][]string{
		{"export", "--profile", "work", "--state-dir", filepath.Join(dir, "lab"), "--to", filepath.Join(dir, "out")},
		{"import", "--profile", "work", "--state-dir", filepath.Join(dir, "lab"), "--from", filepath.Join(dir, "out")},
		{"migrate", "--profile", "work", "--state-dir", filepath.Join(dir, "lab")},
		{"nodes", "pending", "--profile", "work", "--state-dir", filepath.Join(dir, "lab")},
		{"nodes", "pending", "--url", "ws://127.0.0.1:1/ws/work", "--state-dir", filepath.Join(dir, "lab")},
	} {
		code, out, errs := cliRun(env, args...)
		if code != exitUsage || !strings.Contains(errs, "both choose the profile: give one of them") {
			t.Fatalf("%v: exit %d, want %d and the refusal\n%s%s", args, code, exitUsage, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Fatal("a refused export wrote files")
	}

	// A name the configuration lacks is a typo, not ~/.openclaw-NAME.
	for _, args := range [][]string{{"migrate", "--profile", "wrok"}, {"nodes", "pending", "--profile", "wrok", "--url", "http://127.0.0.1:1"}} {
		code, out, errs := cliRun(env, args...)
		if code != exitFailed || !strings.Contains(errs, `has no profile "wrok"; it has default, lab, work`) {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(env("HOME"), ".openclaw-wrok")); err == nil {
		t.Fatal("migrate --profile wrok made ~/.openclaw-wrok")
	}
}

// A CLI with $PAIRGATE_CONFIG and no flags talks to the configuration's
// profile "default" with its token, wherever its state directory is.
func TestClientUsesTheConfiguredDefaultProfile(t *testing.T) {
	dir := t.TempDir()
	const token = "default-operator-token-0123456789abc"
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/home\n    token: %s\n  - name: lab\n    stateDir: %s/lab\n", dir, token, dir)), 0o600)
	srv := startServe(t, testEnv(t, nil), "--config", cfg)
	env := testEnv(t, map[string]string{"PAIRGATE_CONFIG": cfg, "PAIRGATE_URL": srv.url})
	if code, out, errs := cliRun(env, "nodes", "pending"); code != exitOK || !strings.Contains(out, "No pending pairing requests.") {
		t.Fatalf("nodes pending with the configuration's default profile: exit %d\n%s%s", code, out, errs)
	}
}

// A migration trial: a relative --state-dir missed the configuration's
// profile at that directory (compared as given), so its ttl and keyFile
// were not used.
func TestARelativeStateDirFindsTheConfiguredProfile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys", "lab.key")
	os.MkdirAll(filepath.Dir(keyFile), 0o700)
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: lab\n    stateDir: %s/lab\n    keyFile: %s\n", dir, keyFile)), 0o600)
	env := testEnv(t, map[string]string{"PAIRGATE_CONFIG": cfg})
	t.Chdir(dir)
	if code, out, errs := cliRun(env, "migrate", "--state-dir", "lab"); code != exitOK {
		t.Fatalf("migrate --state-dir lab: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("the configured keyFile was not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lab", "nodes", "pairing.key")); err == nil {
		t.Fatal("a key was made in the state directory: the configuration's profile was missed")
	}
}

// A CLI trial: --url ws://host/ws/lab/ (a trailing slash) asked for
// profile "lab/api/v1/profiles", and a REST base copied from docs/rest.md
// (http://host/api/v1) answered Not Found. Any other path is a reverse
// proxy's prefix and stays.
func TestServerBaseTakesTheURLsUsersHave(t *testing.T) {
	for _, tc := range []struct{ url, base, profile string }{
		{"http://127.0.0.1:18789", "http://127.0.0.1:18789", ""},
		{"ws://127.0.0.1:18789/", "http://127.0.0.1:18789", ""},
		{"ws://127.0.0.1:18789/ws/lab", "http://127.0.0.1:18789", "lab"},
		{"ws://127.0.0.1:18789/ws/lab/", "http://127.0.0.1:18789", "lab"},
		{"http://127.0.0.1:18789/api/v1", "http://127.0.0.1:18789", ""},
		{"http://127.0.0.1:18789/api/v1/profiles/work", "http://127.0.0.1:18789", "work"},
		{"https://gw.example/pairgate/", "https://gw.example/pairgate", ""},
		{"http://127.0.0.1:18789/ui/", "http://127.0.0.1:18789", ""},
		{"wss://gw.example/pairgate/ws/work", "https://gw.example/pairgate", "work"},
	} {
		base, profile, err := serverBase(tc.url)
		if err != nil || base != tc.base || profile != tc.profile {
			t.Errorf("serverBase(%s) = %q, %q, %v; want %q, %q", tc.url, base, profile, err, tc.base, tc.profile)
		}
	}
}

// A CLI trial: --url …/ws/work --profile lab acted on lab without a word.
func TestAURLProfileAndADifferentProfileFlagAreRefused(t *testing.T) {
	env := testEnv(t, nil)
	code, out, errs := cliRun(env, "nodes", "pending", "--url", "ws://127.0.0.1:1/ws/work", "--profile", "lab")
	if code != exitUsage || !strings.Contains(errs, `--url names profile "work" (/ws/work) and --profile "lab": give one of them`) {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

// pairgate help nodes [approve] is the command's own help (it printed
// the top-level help).
func TestHelpOfACommand(t *testing.T) {
	env := testEnv(t, nil)
	if code, out, _ := cliRun(env, "help", "nodes", "approve"); code != exitOK || !strings.Contains(out, "Usage: pairgate nodes approve REQUEST_ID") {
		t.Fatalf("help nodes approve: exit %d\n%s", code, out)
	}
	if code, out, _ := cliRun(env, "help", "nodes"); code != exitOK || !strings.Contains(out, "Usage: pairgate nodes <command>") {
		t.Fatalf("help nodes: exit %d\n%s", code, out)
	}
}

// --token-file reads the token from a file (--token shows it to every
// user in the process list); with --token too it is refused.
func TestTokenFileFlag(t *testing.T) {
	_, cfg, srv := startWorkServer(t)
	env := testEnv(t, map[string]string{"PAIRGATE_URL": srv.url})
	file := filepath.Join(t.TempDir(), "work.token")
	os.WriteFile(file, []byte(workToken+"\n"), 0o600)
	if code, out, errs := cliRun(env, "nodes", "pending", "--profile", "work", "--token-file", file); code != exitOK || !strings.Contains(out, "No pending pairing requests.") {
		t.Fatalf("--token-file: exit %d\n%s%s (config %s)", code, out, errs, cfg)
	}
	if code, _, errs := cliRun(env, "nodes", "pending", "--profile", "work", "--token-file", file, "--token", workToken); code != exitUsage || !strings.Contains(errs, "--token and --token-file both give the token") {
		t.Fatalf("--token with --token-file: exit %d %s", code, errs)
	}
	if code, _, errs := cliRun(env, "nodes", "pending", "--profile", "work", "--token-file", file+".missing"); code != exitFailed || !strings.Contains(errs, "--token-file") {
		t.Fatalf("a missing --token-file: exit %d %s", code, errs)
	}
	// A token HTTP cannot carry is refused as such, before anything is
	// sent (it was "the connection ended": an approve maybe done).
	os.WriteFile(file, []byte("line1\nline2\n"), 0o600)
	for _, args := range [][]string{{"--token-file", file}, {"--token", "tok\x01en"}} {
		args = append([]string{"nodes", "approve", "00000000-0000-0000-0000-000000000000", "--profile", "work"}, args...)
		if code, _, errs := cliRun(env, args...); code != exitUsage || !strings.Contains(errs, "control character") || strings.Contains(errs, "may or may not") {
			t.Fatalf("%v: exit %d %s", args, code, errs)
		}
	}
}

// A documentation trial: with a configuration that has no profile
// "default", export, import and migrate without a profile went to
// ~/.openclaw, a directory the configuration does not list, in silence.
// They now take its only profile, or refuse and name them.
func TestAConfigurationWithoutDefaultIsNotTheHomeDirectory(t *testing.T) {
	dir := t.TempDir()
	legacy := emptyLegacyFiles(t, dir)
	two := filepath.Join(dir, "two.yaml")
	os.WriteFile(two, []byte(fmt.Sprintf("profiles:\n  - name: a\n    stateDir: %s/a\n  - name: b\n    stateDir: %s/b\n", dir, dir)), 0o600)
	env := testEnv(t, map[string]string{"PAIRGATE_CONFIG": two})
	for _, args := range [][]string{
		{"migrate"}, {"migrate", "--status"},
		{"import", "--from", legacy}, {"import", "--from", legacy, "--dry-run"},
		{"export", "--to", filepath.Join(dir, "out")},
	} {
		code, out, errs := cliRun(env, args...)
		if code != exitFailed || !strings.Contains(errs, `has no profile "default", and several others: choose one with --profile NAME (a, b)`) {
			t.Fatalf("%v with two profiles, neither default: exit %d\n%s%s", args, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(env("HOME"), ".openclaw")); err == nil {
		t.Fatal("a command made ~/.openclaw, which the configuration does not list")
	}

	one := filepath.Join(dir, "one.yaml")
	os.WriteFile(one, []byte(fmt.Sprintf("profiles:\n  - name: lab\n    stateDir: %s/lab\n", dir)), 0o600)
	env = testEnv(t, map[string]string{"PAIRGATE_CONFIG": one})
	if code, out, errs := cliRun(env, "import", "--from", legacy); code != exitOK {
		t.Fatalf("import with the configuration's only profile: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "lab", "nodes", "pairing.sqlite")); err != nil {
		t.Fatalf("import did not go to the configuration's only profile: %v", err)
	}
}

// A documentation trial: `import --profile NAME` without $PAIRGATE_CONFIG
// filled a new ~/.openclaw-NAME, which no server reads, and said nothing.
// The import still runs (a new profile may be set up so), and says it made
// the directory.
func TestANewStateDirectoryIsSaid(t *testing.T) {
	dir := t.TempDir()
	legacy := emptyLegacyFiles(t, dir)
	env := testEnv(t, nil)
	made := filepath.Join(env("HOME"), ".openclaw-typo")
	code, out, errs := cliRun(env, "import", "--from", legacy, "--profile", "typo")
	if code != exitOK || !strings.Contains(errs, "made the state directory "+made+", which did not exist") {
		t.Fatalf("import into a new ~/.openclaw-typo: exit %d\n%s%s", code, out, errs)
	}
	// Once it exists, nothing more is said.
	code, out, errs = cliRun(env, "import", "--from", legacy, "--profile", "typo")
	if code != exitOK || strings.Contains(errs, "made the state directory") {
		t.Fatalf("import into the existing ~/.openclaw-typo: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cliRun(env, "migrate", "--state-dir", filepath.Join(dir, "fresh"))
	if code != exitOK || !strings.Contains(errs, "made the state directory "+filepath.Join(dir, "fresh")) {
		t.Fatalf("migrate of a new state directory: exit %d\n%s%s", code, out, errs)
	}
}

// A documentation trial: `profiles --profile lab` with another profile's
// token listed that other profile. A named profile is the one listed, or
// the command says the token does not open it.
func TestProfilesListsTheProfileNamed(t *testing.T) {
	dir := t.TempDir()
	const token = "default-operator-token-0123456789abc"
	cfg := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s/home\n    token: %s\n  - name: lab\n    stateDir: %s/lab\n    token: %s\n", dir, token, dir, token)), 0o600)
	srv := startServe(t, testEnv(t, nil), "--config", cfg)
	env := testEnv(t, map[string]string{"PAIRGATE_URL": srv.url})
	code, out, errs := cliRun(env, "profiles", "--token", token)
	if code != exitOK || !strings.Contains(out, "default") || !strings.Contains(out, "lab") {
		t.Fatalf("profiles: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cliRun(env, "profiles", "--token", token, "--profile", "lab")
	if code != exitOK || !strings.Contains(out, filepath.Join(dir, "lab")) || strings.Contains(out, filepath.Join(dir, "home")) {
		t.Fatalf("profiles --profile lab: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cliRun(env, "profiles", "--token", token, "--profile", "work")
	if code != exitFailed || !strings.Contains(errs, `serves no profile "work" for this token; it opens default, lab`) {
		t.Fatalf("profiles --profile work: exit %d\n%s%s", code, out, errs)
	}
}

// emptyLegacyFiles writes an empty paired.json and pending.json into
// dir/legacy and returns that directory.
func emptyLegacyFiles(t *testing.T, dir string) string {
	t.Helper()
	legacy := filepath.Join(dir, "legacy")
	if err := os.MkdirAll(legacy, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pending.json", "paired.json"} {
		if err := os.WriteFile(filepath.Join(legacy, name), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return legacy
}

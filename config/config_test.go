package config

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDefaultProfileFollowsOpenClaw(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"home", map[string]string{"HOME": "/home/ada"}, "/home/ada/.openclaw"},
		{"state dir env", map[string]string{"HOME": "/home/ada", "OPENCLAW_STATE_DIR": "/srv/gw"}, "/srv/gw"},
		{"state dir env with tilde", map[string]string{"HOME": "/home/ada", "OPENCLAW_STATE_DIR": "~/gw"}, "/home/ada/gw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load("", env(tc.vars))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Profiles) != 1 || cfg.Profiles[0].Name != "default" || cfg.Profiles[0].StateDir != tc.want {
				t.Fatalf("profiles %+v, want default at %s", cfg.Profiles, tc.want)
			}
			if cfg.Listen != DefaultListen || cfg.Profiles[0].TTL != 5*time.Minute || cfg.Profiles[0].MaxPending != 1000 {
				t.Fatalf("defaults not applied: %+v", cfg)
			}
		})
	}
}

func TestResolveStateDir(t *testing.T) {
	e := env(map[string]string{"HOME": "/h", "OPENCLAW_STATE_DIR": "/env"})
	for _, tc := range []struct{ dir, profile, want string }{
		{"/flag", "work", "/flag"},
		{"", "work", "/h/.openclaw-work"},
		{"", "default", "/env"},
		{"", "", "/env"},
	} {
		if got := ResolveStateDir(tc.dir, tc.profile, e); got != tc.want {
			t.Errorf("ResolveStateDir(%q, %q) = %q, want %q", tc.dir, tc.profile, got, tc.want)
		}
	}
	if got := ResolveStateDir("", "", env(map[string]string{"HOME": "/h"})); got != "/h/.openclaw" {
		t.Errorf("fallback = %q", got)
	}
}

func TestListenEnvOverride(t *testing.T) {
	cfg, err := Load("", env(map[string]string{"HOME": "/h", "PAIRGATE_LISTEN": "0.0.0.0:9000"}))
	if err != nil || cfg.Listen != "0.0.0.0:9000" {
		t.Fatalf("listen = %q, %v", cfg.Listen, err)
	}
	_, err = Load("", env(map[string]string{"HOME": "/h", "PAIRGATE_LISTEN": "bogus"}))
	if err == nil || !strings.HasPrefix(err.Error(), "config $PAIRGATE_LISTEN: ") {
		t.Fatalf("a bad PAIRGATE_LISTEN: %v, want it refused and named", err)
	}
}

// A bad value from the environment names its variable, and the fix fits
// the profile.
func TestStateDirEnvNamed(t *testing.T) {
	_, err := Load("", env(map[string]string{"HOME": "/h", "OPENCLAW_STATE_DIR": "relstate"}))
	want := `config $OPENCLAW_STATE_DIR: "relstate" is not an absolute path; set it to an absolute directory`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("a relative OPENCLAW_STATE_DIR: %v\nwant %q", err, want)
	}
	path := filepath.Join(t.TempDir(), "pairgate.yaml")
	os.WriteFile(path, []byte("profiles:\n  - name: default\n    stateDir: rel\n"), 0o600)
	_, err = Load(path, env(map[string]string{"HOME": "/h", "OPENCLAW_STATE_DIR": "/from-env"}))
	if err == nil || !strings.HasSuffix(err.Error(), "or ~/.openclaw") || !strings.Contains(err.Error(), ": profiles[0].stateDir: ") {
		t.Fatalf("a relative stateDir of profile default: %v, want the fix to name ~/.openclaw", err)
	}
}

func TestLogLevel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pairgate.yaml")
	if err := os.WriteFile(path, []byte("logLevel: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, envLevel string
		want           slog.Level
	}{
		{"", "", slog.LevelInfo},
		{path, "", slog.LevelDebug},
		{path, "warn", slog.LevelWarn}, // the environment overrides the file
		{"", "error", slog.LevelError},
	} {
		cfg, err := Load(c.path, env(map[string]string{"HOME": "/h", "PAIRGATE_LOG_LEVEL": c.envLevel}))
		if err != nil || cfg.SlogLevel() != c.want {
			t.Fatalf("file %q, PAIRGATE_LOG_LEVEL %q: level %v, %v; want %v", c.path, c.envLevel, cfg.SlogLevel(), err, c.want)
		}
	}
	_, err := Load("", env(map[string]string{"HOME": "/h", "PAIRGATE_LOG_LEVEL": "loud"}))
	if err == nil || !strings.Contains(err.Error(), `config $PAIRGATE_LOG_LEVEL: "loud" is not a log level; use debug, info, warn or error`) {
		t.Fatalf("PAIRGATE_LOG_LEVEL=loud: %v", err)
	}
}

func TestExampleConfigParses(t *testing.T) {
	cfg, err := Load("pairgate.example.yaml", env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	work, ok := profileNamed(cfg, "work")
	if !ok || work.StateDir != "/h/.openclaw-work" || work.TTL != 10*time.Minute {
		t.Fatalf("work profile %+v", work)
	}
	def, _ := profileNamed(cfg, "default")
	if def.DecidedRetention != 168*time.Hour || def.EventRetention != 720*time.Hour {
		t.Fatalf("default profile %+v", def)
	}
}

func TestParseFullProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(`
listen: 127.0.0.1:1
trustedProxies: [10.0.0.0/8, 192.0.2.7]
allowedOrigins: [https://ops.example]
allowedHosts: [pairgate.example]
profiles:
  - name: lab
    listen: 127.0.0.1:2
    tokenFile: ~/lab.token
    maxPending: 5
    sweepInterval: 250ms
    autoApprove:
      silentCidrs: [192.168.1.0/24]
    mirrorLegacyFiles: true
    requestRate:
      perAddress: 3
      perProfile: 30
`), 0o600)
	cfg, err := Load(path, env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Profiles[0]
	want := Profile{
		Name: "lab", StateDir: "/h/.openclaw-lab", Listen: "127.0.0.1:2", TokenFile: "/h/lab.token",
		TTL: DefaultTTL, MaxPending: 5, SweepInterval: 250 * time.Millisecond,
		DecidedRetention: DefaultDecidedRetention, EventRetention: DefaultEventRetention,
		SilentCIDRs: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}, MirrorLegacyFiles: true,
	}
	if p.Name != want.Name || p.StateDir != want.StateDir || p.Listen != want.Listen || p.TokenFile != want.TokenFile ||
		p.MaxPending != want.MaxPending || p.SweepInterval != want.SweepInterval || !p.MirrorLegacyFiles ||
		len(p.SilentCIDRs) != 1 || p.SilentCIDRs[0] != want.SilentCIDRs[0] || p.RequestsPerAddress != 3 || p.RequestsPerProfile != 30 {
		t.Fatalf("profile\n got %+v\nwant %+v", p, want)
	}
	if len(cfg.TrustedProxies) != 2 || cfg.TrustedProxies[1] != netip.MustParsePrefix("192.0.2.7/32") || cfg.AllowedOrigins[0] != "https://ops.example" ||
		len(cfg.AllowedHosts) != 1 || cfg.AllowedHosts[0] != "pairgate.example" {
		t.Fatalf("top level %+v", cfg)
	}
}

func TestValidationNamesKeyAndFix(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"ttl too short", "profiles:\n  - name: a\n    ttl: 10ms\n", "config f: profiles[0].ttl: 10ms is too short; use at least 1s (the default is 5m)"},
		{"retention zero", "profiles:\n  - name: a\n    retention: {events: 0s}\n", "config f: profiles[0].retention.events: 0s is not a retention; use a positive duration such as 720h (the default; leave the key out for it)"},
		{"retention negative", "profiles:\n  - name: a\n    retention: {decided: -1h}\n", "config f: profiles[0].retention.decided: -1h0m0s is not a retention; use a positive duration such as 168h (the default; leave the key out for it)"},
		{"max pending zero", "profiles:\n  - name: a\n    maxPending: 0\n", "config f: profiles[0].maxPending: 0 is out of range; use a number from 1 to 1000000 (the default is 1000)"},
		{"origin with a path", "allowedOrigins: [https://ops.example/]\n", `config f: allowedOrigins[0]: "https://ops.example/" is not an origin; write scheme://host[:port] with nothing after, e.g. https://ops.example`},
		{"host with a scheme", "allowedHosts: [https://pairgate.example]\n", `config f: allowedHosts[0]: "https://pairgate.example" is not a host name; write the name alone, e.g. pairgate.example`},
		{"request rate zero", "profiles:\n  - name: a\n    requestRate: {perAddress: 0}\n", "config f: profiles[0].requestRate.perAddress: 0 is out of range; use a number of requests a minute from 1 to 1000000 (the default is 10)"},
		{"not a number", "profiles:\n  - name: a\n    maxPending: lots\n", `config f: profiles[0].maxPending: "lots" is not a whole number; write digits only, e.g. 1000`},
		{"bad name", "profiles:\n  - name: Has Space\n", `config f: profiles[0].name: "Has Space" is not a valid profile name; use lowercase letters, digits, - and _ (at most 63 characters)`},
		{"missing name", "profiles:\n  - ttl: 5m\n", "config f: profiles[0].name: missing; give every profile a name, e.g. name: work"},
		{"shared state dir", "profiles:\n  - name: a\n    stateDir: /x\n  - name: b\n    stateDir: /x/\n", `config f: profiles[1].stateDir: /x is also the state directory of profile "a"; give each profile its own state directory`},
		{"shared listen", "listen: 127.0.0.1:5\nprofiles:\n  - name: a\n    listen: 127.0.0.1:5\n", "config f: profiles[0].listen: 127.0.0.1:5 is already used by listen; give the profile an address of its own, or remove the key"},
		{"duplicate key", "listen: 127.0.0.1:5\nlisten: 127.0.0.1:6\n", "config f: listen: given twice (line 2); keep one"},
		{"bool", "profiles:\n  - name: a\n    mirrorLegacyFiles: yes\n", `config f: profiles[0].mirrorLegacyFiles: "yes" is not true or false; write true or false`},
		{"no profiles", "profiles: []\n", "config f: profiles: no profile is configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := validationError(t, tc.yaml); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("error\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestEmptyFileIsTheDefault(t *testing.T) {
	cfg, err := Parse(nil, env(map[string]string{"HOME": "/h"}))
	if err != nil || len(cfg.Profiles) != 1 || cfg.Profiles[0].StateDir != "/h/.openclaw" {
		t.Fatalf("%+v %v", cfg, err)
	}
}

func TestCreateFileOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	created, err := CreateFileOnce(path, []byte("first"))
	if err != nil || !created {
		t.Fatalf("first create = %v, %v", created, err)
	}
	created, err = CreateFileOnce(path, []byte("second"))
	if err != nil || created {
		t.Fatalf("second create = %v, %v", created, err)
	}
	b, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(b) != "first" || st.Mode().Perm() != 0o600 {
		t.Fatalf("content %q mode %v", b, st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func profileNamed(cfg Config, name string) (Profile, bool) {
	for _, p := range cfg.Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

func TestMaxConnectionsPerAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pairgate.yaml")
	for yaml, want := range map[string]string{
		"maxConnectionsPerAddress: 64\n":      "",
		"maxConnectionsPerAddress: 0\n":       "maxConnectionsPerAddress: 0 is out of range",
		"maxConnectionsPerAddress: 2000000\n": "maxConnectionsPerAddress: 2000000 is out of range",
	} {
		os.WriteFile(path, []byte(yaml), 0o600)
		cfg, err := Load(path, env(map[string]string{"HOME": "/h"}))
		switch {
		case want == "" && (err != nil || cfg.MaxConnsPerAddress != 64):
			t.Fatalf("%q: %+v %v", yaml, cfg.MaxConnsPerAddress, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Fatalf("%q: %v, want %q", yaml, err, want)
		}
	}
}

// An operator trial: two profiles on one directory through a symbolic
// link passed validation, and the second was refused at start as
// "already served by" the server's own process.
func TestStateDirsThroughASymlinkAreOneDirectory(t *testing.T) {
	dir := t.TempDir()
	real, link := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.Mkdir(real, 0o700)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte("profiles:\n  - name: a\n    stateDir: "+real+"\n  - name: b\n    stateDir: "+link+"\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if err = cfg.Validate(); err == nil || !strings.Contains(err.Error(), "(a symbolic link), the directory of profile \"a\"") {
		t.Fatalf("Parse = %v; want the shared directory named", err)
	}
	// nodes/ shared through a link, the state directories apart.
	other := filepath.Join(dir, "c")
	os.Mkdir(other, 0o700)
	os.Mkdir(filepath.Join(real, "nodes"), 0o700)
	if err := os.Symlink(filepath.Join(real, "nodes"), filepath.Join(other, "nodes")); err != nil {
		t.Fatal(err)
	}
	cfg, err = Parse([]byte("profiles:\n  - name: a\n    stateDir: "+real+"\n  - name: c\n    stateDir: "+other+"\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if err = cfg.Validate(); err == nil || !strings.Contains(err.Error(), "(a symbolic link), the directory of profile \"a\"") {
		t.Fatalf("shared nodes/: %v", err)
	}
	if !SameDir(link, real) || SameDir(other, real) {
		t.Fatal("SameDir")
	}
}

// In a configuration file, a profile without stateDir is at OpenClaw's
// place for its name, whatever $OPENCLAW_STATE_DIR says (the variable
// moves only the profile of the no-file default).
func TestFileProfilesIgnoreOPENCLAW_STATE_DIR(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pairgate.yaml")
	os.WriteFile(path, []byte("profiles:\n  - name: default\n  - name: work\n"), 0o600)
	cfg, err := Load(path, env(map[string]string{"HOME": "/h", "OPENCLAW_STATE_DIR": "/env"}))
	if err != nil {
		t.Fatal(err)
	}
	if def, _ := profileNamed(cfg, "default"); def.StateDir != "/h/.openclaw" {
		t.Fatalf("default at %s, want /h/.openclaw", def.StateDir)
	}
	if work, _ := profileNamed(cfg, "work"); work.StateDir != "/h/.openclaw-work" {
		t.Fatalf("work at %s", work.StateDir)
	}
	if cfg, _ := Load("", env(map[string]string{"HOME": "/h", "OPENCLAW_STATE_DIR": "/env"})); cfg.Profiles[0].StateDir != "/env" {
		t.Fatalf("without a file, default at %s, want /env", cfg.Profiles[0].StateDir)
	}
}

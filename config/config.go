// Package config holds pairgate's configuration: the listen address, the
// trust settings, and the gateway profiles with their state directories and
// limits. It also knows the layout of a profile's state directory.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultListen is where the server listens when nothing says otherwise: the
// port an OpenClaw gateway uses, on loopback only.
const DefaultListen = "127.0.0.1:18789"

// DefaultProfile is the name of the profile served at "/" and used when no
// configuration names any.
const DefaultProfile = "default"

// Defaults for a profile's limits (see spec/pairing.md).
const (
	DefaultTTL        = 5 * time.Minute
	DefaultMaxPending = 1000
	// DefaultMaxConnsPerAddress bounds the WebSocket connections one
	// source address holds open (about 27 KB each before a handshake).
	DefaultMaxConnsPerAddress = 1024
	DefaultSweepInterval      = time.Second
	DefaultDecidedRetention   = 7 * 24 * time.Hour
	DefaultEventRetention     = 30 * 24 * time.Hour
	// New pending requests a minute that nodes may open: from one source
	// address, and in the whole profile. With the default TTL the profile's
	// rate cannot fill DefaultMaxPending.
	DefaultRequestsPerAddress = 10
	DefaultRequestsPerProfile = 60
)

// Config is the whole configuration of one pairgate process.
type Config struct {
	// Listen is the main HTTP/WS address.
	Listen string
	// TrustedProxies are the peers whose forwarded headers are believed.
	TrustedProxies []netip.Prefix
	// AllowedOrigins are browser origins accepted on WebSocket upgrades
	// and state-changing requests in addition to the server's own addresses.
	AllowedOrigins []string
	// AllowedHosts are host names (beyond the listen addresses) that
	// requests may name in Host, such as a reverse proxy's public name.
	AllowedHosts []string
	// LogLevel is the lowest level logged: debug, info (the default),
	// warn or error.
	LogLevel string
	// MaxConnsPerAddress bounds the WebSocket connections one source
	// address holds open, and apart its plain HTTP connections; 0 is
	// DefaultMaxConnsPerAddress.
	MaxConnsPerAddress int
	Profiles           []Profile
}

// SlogLevel is LogLevel for log/slog; Validate has checked it.
func (c Config) SlogLevel() slog.Level {
	var l slog.Level
	if c.LogLevel != "" {
		l.UnmarshalText([]byte(c.LogLevel))
	}
	return l
}

// Profile is one gateway's pairing domain.
type Profile struct {
	Name     string
	StateDir string
	// Listen, when set, is an extra address that serves only this profile.
	Listen string
	// Token is the operator token given inline; TokenFile names a file that
	// holds it. With neither, one is generated into OperatorTokenPath.
	Token     string
	TokenFile string

	TTL              time.Duration
	MaxPending       int
	SweepInterval    time.Duration
	DecidedRetention time.Duration
	EventRetention   time.Duration
	// RequestsPerAddress and RequestsPerProfile bound the new pending
	// requests nodes open a minute (requestRate.perAddress, .perProfile).
	RequestsPerAddress int
	RequestsPerProfile int

	// SilentCIDRs are the networks whose silent requests are approved at once.
	SilentCIDRs       []netip.Prefix
	MirrorLegacyFiles bool
	// Webhooks receive the profile's events (config/webhooks.go).
	Webhooks []Webhook
	// Replicas receive the profile's database continuously; with
	// RestoreIfMissing, serve restores a missing database from the first
	// (config/replicas.go).
	Replicas         []Replica
	RestoreIfMissing bool
	// KeyFile, when set, is where the profile's pairing.key lives instead
	// of the state directory: a secret the operator keeps apart, since a
	// replica holds the database but never the key.
	KeyFile string
}

// NodesDir is the directory that holds everything pairgate keeps for the profile.
func (p Profile) NodesDir() string { return filepath.Join(p.StateDir, "nodes") }

// DatabasePath is the SQLite database, the source of truth.
func (p Profile) DatabasePath() string { return filepath.Join(p.NodesDir(), "pairing.sqlite") }

// KeyPath is the key that seals pairing tokens at rest: keyFile, else
// <stateDir>/nodes/pairing.key.
func (p Profile) KeyPath() string {
	if p.KeyFile != "" {
		return p.KeyFile
	}
	return filepath.Join(p.NodesDir(), "pairing.key")
}

// OperatorTokenPath is where a generated operator token is kept.
func (p Profile) OperatorTokenPath() string { return filepath.Join(p.NodesDir(), "operator.token") }

// LockPath is the file a serving process holds locked.
func (p Profile) LockPath() string { return filepath.Join(p.NodesDir(), "pairing.lock") }

// NewProfile returns a profile with every limit at its default.
func NewProfile(name, stateDir string) Profile {
	return Profile{
		Name:             name,
		StateDir:         stateDir,
		TTL:              DefaultTTL,
		MaxPending:       DefaultMaxPending,
		SweepInterval:    DefaultSweepInterval,
		DecidedRetention: DefaultDecidedRetention,
		EventRetention:   DefaultEventRetention,

		RequestsPerAddress: DefaultRequestsPerAddress,
		RequestsPerProfile: DefaultRequestsPerProfile,
	}
}

// Default is the configuration used when there is no file: one profile,
// "default", at $OPENCLAW_STATE_DIR or ~/.openclaw.
func Default(getenv func(string) string) Config {
	return Config{
		Listen:   DefaultListen,
		Profiles: []Profile{NewProfile(DefaultProfile, DefaultStateDir(getenv))},
	}
}

// DefaultStateDir is OpenClaw's own choice of state directory.
func DefaultStateDir(getenv func(string) string) string {
	if dir := getenv("OPENCLAW_STATE_DIR"); dir != "" {
		return expandHome(dir, getenv)
	}
	return filepath.Join(home(getenv), ".openclaw")
}

// ProfileStateDir is where OpenClaw keeps the state of a named profile:
// ~/.openclaw-NAME (the default profile lives in DefaultStateDir).
func ProfileStateDir(name string, getenv func(string) string) string {
	if name == DefaultProfile {
		return DefaultStateDir(getenv)
	}
	return filepath.Join(home(getenv), ".openclaw-"+name)
}

// ResolveStateDir picks the state directory a command works on:
// --state-dir, then --profile, then $OPENCLAW_STATE_DIR, then ~/.openclaw.
func ResolveStateDir(stateDirFlag, profileFlag string, getenv func(string) string) string {
	switch {
	case stateDirFlag != "":
		return expandHome(stateDirFlag, getenv)
	case profileFlag != "":
		return ProfileStateDir(profileFlag, getenv)
	default:
		return DefaultStateDir(getenv)
	}
}

// SameDir says whether a and b are one directory: the same path once
// cleaned, or once symbolic links are resolved.
func SameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	return errA == nil && errB == nil && ra == rb
}

func home(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	return "/"
}

func expandHome(path string, getenv func(string) string) string {
	if path == "~" {
		return home(getenv)
	}
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		return filepath.Join(home(getenv), rest)
	}
	return path
}

var profileNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks the whole configuration and names the first bad key.
func (c Config) Validate() error {
	if err := checkListen("listen", c.Listen); err != nil {
		return err
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return keyError("logLevel", fmt.Sprintf("%q is not a log level", c.LogLevel), "use debug, info, warn or error")
	}
	if c.MaxConnsPerAddress < 0 || c.MaxConnsPerAddress > 1_000_000 {
		return keyError("maxConnectionsPerAddress", fmt.Sprintf("%d is out of range", c.MaxConnsPerAddress), fmt.Sprintf("use a number from 1 to 1000000 (the default is %d)", DefaultMaxConnsPerAddress))
	}
	for i, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" || u.RawQuery != "" || u.User != nil) {
			return keyError(fmt.Sprintf("allowedOrigins[%d]", i), fmt.Sprintf("%q is not an origin", o), "write scheme://host[:port] with nothing after, e.g. https://ops.example")
		}
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ @") {
			return keyError(fmt.Sprintf("allowedHosts[%d]", i), fmt.Sprintf("%q is not a host name", h), "write the name alone, e.g. pairgate.example")
		}
	}
	if len(c.Profiles) == 0 {
		return keyError("profiles", "no profile is configured", "declare at least one profile, or remove the key to get the default one")
	}
	names := map[string]bool{}
	dirs, nodesDirs := map[string]string{}, map[string]string{}
	replicaURLs := map[string]string{}
	keys := map[string]string{}
	listens := map[string]string{c.Listen: "listen"}
	for i, p := range c.Profiles {
		at := func(key string) string { return fmt.Sprintf("profiles[%d].%s", i, key) }
		if !profileNameRE.MatchString(p.Name) {
			return keyError(at("name"), fmt.Sprintf("%q is not a valid profile name", p.Name), "use lowercase letters, digits, - and _ (at most 63 characters)")
		}
		if names[p.Name] {
			return keyError(at("name"), fmt.Sprintf("profile %q is declared twice", p.Name), "give each profile its own name")
		}
		names[p.Name] = true
		if p.StateDir == "" || !filepath.IsAbs(p.StateDir) {
			home := "~/.openclaw-" + p.Name
			if p.Name == DefaultProfile {
				home = "~/.openclaw"
			}
			return keyError(at("stateDir"), fmt.Sprintf("%q is not an absolute path", p.StateDir), "write an absolute directory such as /var/lib/pairgate/"+p.Name+" or "+home)
		}
		clean := filepath.Clean(p.StateDir)
		if other, dup := dirs[clean]; dup {
			return keyError(at("stateDir"), fmt.Sprintf("%s is also the state directory of profile %q", clean, other), "give each profile its own state directory")
		}
		// The same directory through a symbolic link (the state
		// directory, or its nodes/ where everything is kept): the second
		// profile was refused at start as "already served by" the
		// server itself.
		if real, err := filepath.EvalSymlinks(clean); err == nil && real != clean {
			if other, dup := dirs[real]; dup {
				return keyError(at("stateDir"), fmt.Sprintf("%s is %s (a symbolic link), the directory of profile %q", clean, real, other), "give each profile its own state directory")
			}
			dirs[real] = p.Name
		}
		dirs[clean] = p.Name
		nodes := filepath.Join(clean, "nodes")
		if real, err := filepath.EvalSymlinks(nodes); err == nil {
			nodes = real
		}
		if other, dup := nodesDirs[nodes]; dup {
			return keyError(at("stateDir"), fmt.Sprintf("%s/nodes is %s (a symbolic link), the directory of profile %q", clean, nodes, other), "give each profile its own state directory")
		}
		nodesDirs[nodes] = p.Name
		if p.Listen != "" {
			if err := checkListen(at("listen"), p.Listen); err != nil {
				return err
			}
			if other, dup := listens[p.Listen]; dup {
				return keyError(at("listen"), fmt.Sprintf("%s is already used by %s", p.Listen, other), "give the profile an address of its own, or remove the key")
			}
			listens[p.Listen] = at("listen")
		}
		if p.Token != "" && p.TokenFile != "" {
			return keyError(at("token"), "both token and tokenFile are set", "keep one of them")
		}
		if p.TTL < time.Second {
			return keyError(at("ttl"), fmt.Sprintf("%s is too short", p.TTL), "use at least 1s (the default is 5m)")
		}
		if p.MaxPending < 1 || p.MaxPending > 1_000_000 {
			return keyError(at("maxPending"), fmt.Sprintf("%d is out of range", p.MaxPending), "use a number from 1 to 1000000 (the default is 1000)")
		}
		if p.SweepInterval < 10*time.Millisecond {
			return keyError(at("sweepInterval"), fmt.Sprintf("%s is too short", p.SweepInterval), "use at least 10ms (the default is 1s)")
		}
		if p.RequestsPerAddress < 1 || p.RequestsPerAddress > 1_000_000 {
			return keyError(at("requestRate.perAddress"), fmt.Sprintf("%d is out of range", p.RequestsPerAddress), fmt.Sprintf("use a number of requests a minute from 1 to 1000000 (the default is %d)", DefaultRequestsPerAddress))
		}
		if p.RequestsPerProfile < 1 || p.RequestsPerProfile > 1_000_000 {
			return keyError(at("requestRate.perProfile"), fmt.Sprintf("%d is out of range", p.RequestsPerProfile), fmt.Sprintf("use a number of requests a minute from 1 to 1000000 (the default is %d)", DefaultRequestsPerProfile))
		}
		// 0 is refused too: it read as the default (an outside trial),
		// where whoever wrote it may have meant "keep nothing".
		if p.DecidedRetention <= 0 {
			return keyError(at("retention.decided"), fmt.Sprintf("%s is not a retention", p.DecidedRetention), "use a positive duration such as 168h (the default; leave the key out for it)")
		}
		if p.EventRetention <= 0 {
			return keyError(at("retention.events"), fmt.Sprintf("%s is not a retention", p.EventRetention), "use a positive duration such as 720h (the default; leave the key out for it)")
		}
		if err := p.validateWebhooks(fmt.Sprintf("profiles[%d]", i)); err != nil {
			return err
		}
		key := filepath.Clean(p.KeyPath())
		if other := keys[key]; other != "" {
			return keyError(at("keyFile"), fmt.Sprintf("%s is also the key of profile %q", key, other), "give each profile its own key file")
		}
		keys[key] = p.Name
		if err := p.validateReplicas(fmt.Sprintf("profiles[%d]", i), replicaURLs); err != nil {
			return err
		}
	}
	return nil
}

func checkListen(key, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return keyError(key, fmt.Sprintf("%q is not a host:port address", addr), "write e.g. 127.0.0.1:18789")
	}
	return nil
}

// Error is a configuration problem: which key, what is wrong, how to fix it.
type Error struct {
	File    string
	Key     string
	Problem string
	Fix     string
}

func (e *Error) Error() string {
	where := e.Key
	if e.File != "" && e.Key != "" {
		where = e.File + ": " + e.Key
	} else if e.File != "" {
		where = e.File
	}
	return fmt.Sprintf("config %s: %s; %s", where, e.Problem, e.Fix)
}

func keyError(key, problem, fix string) error {
	return &Error{Key: key, Problem: problem, Fix: fix}
}

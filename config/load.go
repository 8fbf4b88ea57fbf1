package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bounds of the configuration file: far above any real configuration, far
// below what could exhaust memory while parsing it.
const (
	MaxConfigBytes = 256 << 10
	MaxConfigDepth = 64
)

// Load reads the configuration: the YAML file at path (none when path is
// empty), then the environment overrides PAIRGATE_LISTEN and
// PAIRGATE_LOG_LEVEL. The result is
// validated; a problem names the key and the fix.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default(getenv)
	if path != "" {
		raw, err := readBounded(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		cfg, err = Parse(raw, getenv)
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				ce.File = path
			}
			return Config{}, err
		}
	}
	if listen := getenv("PAIRGATE_LISTEN"); listen != "" {
		cfg.Listen = listen
	}
	if level := getenv("PAIRGATE_LOG_LEVEL"); level != "" {
		cfg.LogLevel = level
	}
	if err := cfg.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.File == "" {
			ce.File = path
			blameEnvironment(ce, path, getenv)
		}
		return Config{}, err
	}
	return cfg, nil
}

// blameEnvironment names the environment variable a problem came from,
// when the value was the variable's: $PAIRGATE_LISTEN for listen,
// $PAIRGATE_LOG_LEVEL for logLevel, and,
// with no configuration file, $OPENCLAW_STATE_DIR for the default
// profile's state directory.
func blameEnvironment(ce *Error, path string, getenv func(string) string) {
	switch {
	case ce.Key == "listen" && getenv("PAIRGATE_LISTEN") != "":
		ce.Key = "$PAIRGATE_LISTEN"
	case ce.Key == "logLevel" && getenv("PAIRGATE_LOG_LEVEL") != "":
		ce.Key = "$PAIRGATE_LOG_LEVEL"
	case ce.Key == "profiles[0].stateDir" && path == "" && getenv("OPENCLAW_STATE_DIR") != "":
		ce.Key, ce.Fix = "$OPENCLAW_STATE_DIR", "set it to an absolute directory, such as ~/.openclaw or /var/lib/pairgate, or unset it for ~/.openclaw"
	}
}

// Parse decodes a YAML configuration document. Unknown keys are errors, so a
// typo cannot silently leave a default in force.
func Parse(raw []byte, getenv func(string) string) (Config, error) {
	cfg := Config{Listen: DefaultListen}
	if len(raw) > MaxConfigBytes {
		return Config{}, &Error{Key: "(file)", Problem: fmt.Sprintf("the file is larger than %d bytes", MaxConfigBytes), Fix: "a configuration is a few kilobytes; see config/pairgate.example.yaml"}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Default(getenv), nil
		}
		// The YAML parser names the line where the block it was reading
		// began, not the line that broke it (an operator trial: a key
		// indented one space too few on line 3, "line 1" in the error).
		return Config{}, &Error{Key: "(file)", Problem: "not valid YAML: " + err.Error(), Fix: "the line named may be where the broken block begins: check the indentation of the lines after it (spaces, the same for every key of a list item); see config/pairgate.example.yaml"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if err := checkNesting(root, "", 0); err != nil {
		return Config{}, err
	}
	w := walker{getenv: getenv}
	var profiles *yaml.Node
	w.mapping("", root, map[string]func(key string, n *yaml.Node){
		"listen":         func(k string, n *yaml.Node) { cfg.Listen = w.str(k, n) },
		"trustedProxies": func(k string, n *yaml.Node) { cfg.TrustedProxies = w.prefixes(k, n) },
		"allowedOrigins": func(k string, n *yaml.Node) { cfg.AllowedOrigins = w.strs(k, n) },
		"allowedHosts":   func(k string, n *yaml.Node) { cfg.AllowedHosts = w.strs(k, n) },
		"logLevel":       func(k string, n *yaml.Node) { cfg.LogLevel = w.str(k, n) },
		"maxConnectionsPerAddress": func(k string, n *yaml.Node) {
			cfg.MaxConnsPerAddress = w.integer(k, n)
			if cfg.MaxConnsPerAddress < 1 && w.err == nil {
				w.fail(k, fmt.Sprintf("%d is out of range", cfg.MaxConnsPerAddress), fmt.Sprintf("use a number from 1 to 1000000 (the default is %d)", DefaultMaxConnsPerAddress))
			}
		},
		"profiles": func(_ string, n *yaml.Node) { profiles = n },
	})
	if w.err != nil {
		return Config{}, w.err
	}
	if profiles == nil {
		cfg.Profiles = Default(getenv).Profiles
		return cfg, nil
	}
	if profiles.Kind != yaml.SequenceNode {
		return Config{}, keyError("profiles", "want a list of profiles", "write one '- name: …' entry per profile")
	}
	for i, pn := range profiles.Content {
		p := w.profile(fmt.Sprintf("profiles[%d]", i), pn)
		if w.err != nil {
			return Config{}, w.err
		}
		cfg.Profiles = append(cfg.Profiles, p)
	}
	return cfg, nil
}

// readBounded reads at most MaxConfigBytes+1 bytes of path: enough for
// Parse to refuse an oversized file without reading all of it.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
}

// checkNesting refuses nesting deeper than MaxConfigDepth and YAML aliases
// (which the walker would not follow), naming the key path.
func checkNesting(n *yaml.Node, at string, depth int) error {
	switch n.Kind {
	case yaml.AliasNode:
		return keyError(orRoot(at), fmt.Sprintf("a YAML alias (*%s, line %d)", n.Value, n.Line), "write the value out; pairgate does not expand aliases")
	case yaml.MappingNode, yaml.SequenceNode:
		if depth >= MaxConfigDepth {
			return keyError(orRoot(at), fmt.Sprintf("nested deeper than %d levels (line %d)", MaxConfigDepth, n.Line), "pairgate's configuration is a few levels deep; see config/pairgate.example.yaml")
		}
	}
	for i, c := range n.Content {
		key := fmt.Sprintf("%s[%d]", at, i)
		if n.Kind == yaml.MappingNode {
			key = join(at, n.Content[i&^1].Value)
		}
		if err := checkNesting(c, key, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// walker decodes YAML nodes into typed values, keeping the first error with
// the path of the key that caused it.
type walker struct {
	getenv func(string) string
	err    error
}

func (w *walker) fail(key, problem, fix string) {
	if w.err == nil {
		w.err = keyError(key, problem, fix)
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (w *walker) mapping(at string, n *yaml.Node, fields map[string]func(key string, n *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		w.fail(orRoot(at), "want a mapping of keys to values", "see config/pairgate.example.yaml")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && w.err == nil; i += 2 {
		name := n.Content[i].Value
		if n.Content[i].Kind != yaml.ScalarNode || name == "" {
			w.fail(orRoot(at), fmt.Sprintf("a key that is empty or not a plain name (line %d)", n.Content[i].Line), "write keys as plain names, e.g. listen: 127.0.0.1:18789")
			return
		}
		key := join(at, name)
		set, ok := fields[name]
		if !ok {
			w.fail(key, fmt.Sprintf("unknown key (line %d)", n.Content[i].Line), "remove it or correct its spelling; known keys: "+knownKeys(fields))
			return
		}
		if seen[name] {
			w.fail(key, fmt.Sprintf("given twice (line %d)", n.Content[i].Line), "keep one")
			return
		}
		seen[name] = true
		set(key, n.Content[i+1])
	}
}

func orRoot(at string) string {
	if at == "" {
		return "(top level)"
	}
	return at
}

func knownKeys(fields map[string]func(string, *yaml.Node)) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func (w *walker) scalar(key string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		w.fail(key, fmt.Sprintf("want a single value (line %d)", n.Line), "write it as key: value")
		return "", false
	}
	return n.Value, true
}

func (w *walker) str(key string, n *yaml.Node) string {
	v, _ := w.scalar(key, n)
	return v
}

func (w *walker) strs(key string, n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		w.fail(key, fmt.Sprintf("want a list (line %d)", n.Line), "write [a, b] or one '- item' per line")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		v, ok := w.scalar(fmt.Sprintf("%s[%d]", key, i), item)
		if !ok {
			return nil
		}
		out = append(out, v)
	}
	return out
}

func (w *walker) prefixes(key string, n *yaml.Node) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range w.strs(key, n) {
		p, err := parsePrefix(s)
		if err != nil {
			w.fail(fmt.Sprintf("%s[%d]", key, i), fmt.Sprintf("%q is not an address or CIDR", s), "write e.g. 10.0.0.0/8 or 192.0.2.7")
			return nil
		}
		out = append(out, p)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (w *walker) duration(key string, n *yaml.Node) time.Duration {
	v, ok := w.scalar(key, n)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		w.fail(key, fmt.Sprintf("%q is not a duration", v), "write e.g. 300s, 5m or 168h")
	}
	return d
}

func (w *walker) integer(key string, n *yaml.Node) int {
	v, ok := w.scalar(key, n)
	if !ok {
		return 0
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		w.fail(key, fmt.Sprintf("%q is not a whole number", v), "write digits only, e.g. 1000")
	}
	return i
}

func (w *walker) boolean(key string, n *yaml.Node) bool {
	v, ok := w.scalar(key, n)
	if !ok {
		return false
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	w.fail(key, fmt.Sprintf("%q is not true or false", v), "write true or false")
	return false
}

// listOf walks a list, handing each entry and its key path (at[i]) to item.
func listOf[T any](w *walker, at string, n *yaml.Node, fix string, item func(at string, n *yaml.Node) T) []T {
	if n.Kind != yaml.SequenceNode {
		w.fail(at, fmt.Sprintf("want a list (line %d)", n.Line), fix)
		return nil
	}
	var out []T
	for i, entry := range n.Content {
		out = append(out, item(fmt.Sprintf("%s[%d]", at, i), entry))
	}
	return out
}

func (w *walker) profile(at string, n *yaml.Node) Profile {
	p := NewProfile("", "")
	var stateDir string
	w.mapping(at, n, map[string]func(string, *yaml.Node){
		"name":          func(k string, n *yaml.Node) { p.Name = w.str(k, n) },
		"stateDir":      func(k string, n *yaml.Node) { stateDir = w.str(k, n) },
		"listen":        func(k string, n *yaml.Node) { p.Listen = w.str(k, n) },
		"token":         func(k string, n *yaml.Node) { p.Token = w.str(k, n) },
		"tokenFile":     func(k string, n *yaml.Node) { p.TokenFile = expandHome(w.str(k, n), w.getenv) },
		"ttl":           func(k string, n *yaml.Node) { p.TTL = w.duration(k, n) },
		"maxPending":    func(k string, n *yaml.Node) { p.MaxPending = w.integer(k, n) },
		"sweepInterval": func(k string, n *yaml.Node) { p.SweepInterval = w.duration(k, n) },
		"retention": func(k string, n *yaml.Node) {
			w.mapping(k, n, map[string]func(string, *yaml.Node){
				"decided": func(k string, n *yaml.Node) { p.DecidedRetention = w.duration(k, n) },
				"events":  func(k string, n *yaml.Node) { p.EventRetention = w.duration(k, n) },
			})
		},
		"autoApprove": func(k string, n *yaml.Node) {
			w.mapping(k, n, map[string]func(string, *yaml.Node){
				"silentCidrs": func(k string, n *yaml.Node) { p.SilentCIDRs = w.prefixes(k, n) },
			})
		},
		"mirrorLegacyFiles": func(k string, n *yaml.Node) { p.MirrorLegacyFiles = w.boolean(k, n) },
		"requestRate": func(k string, n *yaml.Node) {
			w.mapping(k, n, map[string]func(string, *yaml.Node){
				"perAddress": func(k string, n *yaml.Node) { p.RequestsPerAddress = w.integer(k, n) },
				"perProfile": func(k string, n *yaml.Node) { p.RequestsPerProfile = w.integer(k, n) },
			})
		},
		"webhooks":         func(k string, n *yaml.Node) { p.Webhooks = w.webhooks(k, n) },
		"replicas":         func(k string, n *yaml.Node) { p.Replicas = w.replicas(k, n) },
		"restoreIfMissing": func(k string, n *yaml.Node) { p.RestoreIfMissing = w.boolean(k, n) },
		"keyFile":          func(k string, n *yaml.Node) { p.KeyFile = expandHome(w.str(k, n), w.getenv) },
	})
	if w.err == nil && p.Name == "" {
		w.fail(join(at, "name"), "missing", "give every profile a name, e.g. name: work")
	}
	if stateDir == "" && w.err == nil {
		// OpenClaw's own convention: the default profile at ~/.openclaw,
		// any other at ~/.openclaw-NAME. Not $OPENCLAW_STATE_DIR: the
		// file fixes where the server's profiles are, whatever the shell
		// it is started from chose for its CLI commands (a serve started
		// from such a shell served default empty from another directory).
		stateDir = filepath.Join(home(w.getenv), ".openclaw")
		if p.Name != DefaultProfile {
			stateDir = ProfileStateDir(p.Name, w.getenv)
		}
	}
	p.StateDir = expandHome(stateDir, w.getenv)
	return p
}

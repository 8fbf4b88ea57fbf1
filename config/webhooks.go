package config

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultWebhookTimeout bounds one delivery attempt when the configuration
// does not say.
const DefaultWebhookTimeout = 5 * time.Second

// WebhookEvents are the event names a webhook can ask for (the db package's
// event names; a test in server/webhook keeps the two lists equal).
var WebhookEvents = []string{"node.pair.requested", "node.pair.resolved", "node.renamed", "node.connected", "legacy.imported"}

// secretPrefix marks a Standard Webhooks signing secret.
const secretPrefix = "whsec_"

// Webhook is one endpoint that receives a profile's events.
type Webhook struct {
	URL string
	// Secret is the signing secret, whsec_ + base64; SecretFile names a file
	// holding it (read by ReadSecrets, which then fills Secret).
	Secret     string
	SecretFile string
	// Events filters by event name; empty means every event.
	Events  []string
	Timeout time.Duration
}

// ID names the endpoint in the database, the API and metrics: derived from
// the URL, so it survives restarts and secret rotation.
func (w Webhook) ID() string {
	sum := sha256.Sum256([]byte(w.URL))
	return "wh_" + hex.EncodeToString(sum[:5])
}

// Wants reports whether the endpoint receives events of that name.
func (w Webhook) Wants(event string) bool {
	return len(w.Events) == 0 || slices.Contains(w.Events, event)
}

// SigningKey is the HMAC key: the base64-decoded part of the secret.
func (w Webhook) SigningKey() ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(w.Secret), secretPrefix)
	if !ok {
		return nil, errors.New("has no " + secretPrefix + " prefix")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("is not base64 after " + secretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("decodes to %d bytes; want 24 to 64", len(key))
	}
	return key, nil
}

// PlainHTTPElsewhere reports an endpoint reached without TLS on a host
// other than loopback: its events and signatures cross the network in clear.
func (w Webhook) PlainHTTPElsewhere() bool {
	u, err := url.Parse(w.URL)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// RedactedURL is the URL without credentials, path or query (any of which
// may hold a secret), for logs and the API.
func (w Webhook) RedactedURL() string {
	u, err := url.Parse(w.URL)
	if err != nil {
		return "(invalid URL)"
	}
	out := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

const secretFix = "write secret: whsec_<base64 of 24 to 64 random bytes> (e.g. whsec_$(openssl rand -base64 32)), or secretFile: a file holding it"

func (w *walker) webhooks(at string, n *yaml.Node) []Webhook {
	return listOf(w, at, n, "write one '- url: …' entry per endpoint", func(at string, item *yaml.Node) Webhook {
		hook := Webhook{Timeout: DefaultWebhookTimeout}
		w.mapping(at, item, map[string]func(string, *yaml.Node){
			"url":        func(k string, n *yaml.Node) { hook.URL = w.str(k, n) },
			"secret":     func(k string, n *yaml.Node) { hook.Secret = w.str(k, n) },
			"secretFile": func(k string, n *yaml.Node) { hook.SecretFile = expandHome(w.str(k, n), w.getenv) },
			"events":     func(k string, n *yaml.Node) { hook.Events = w.strs(k, n) },
			"timeout":    func(k string, n *yaml.Node) { hook.Timeout = w.duration(k, n) },
		})
		return hook
	})
}

// validateWebhooks checks a profile's endpoints; at is the profile's key path.
func (p Profile) validateWebhooks(at string) error {
	urls := map[string]bool{}
	for j, h := range p.Webhooks {
		key := func(k string) string { return fmt.Sprintf("%s.webhooks[%d].%s", at, j, k) }
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Not the URL as written: its user:password would reach the
			// terminal and the service's log.
			return keyError(key("url"), fmt.Sprintf("%q is not an http(s) URL", withoutUserinfo(h.URL)), "write e.g. url: https://hooks.example/pairgate")
		}
		if urls[h.URL] {
			return keyError(key("url"), "this URL is given twice", "keep one entry and list every event it wants in its events")
		}
		urls[h.URL] = true
		switch {
		case h.Secret != "" && h.SecretFile != "":
			return keyError(key("secret"), "both secret and secretFile are set", "keep one of them")
		case h.Secret == "" && h.SecretFile == "":
			return keyError(key("secret"), "missing: every webhook is signed", secretFix)
		case h.Secret != "":
			if _, err := h.SigningKey(); err != nil {
				return keyError(key("secret"), "not a Standard Webhooks secret: it "+err.Error(), secretFix)
			}
		}
		for k, e := range h.Events {
			if !slices.Contains(WebhookEvents, e) {
				return keyError(fmt.Sprintf("%s[%d]", key("events"), k), fmt.Sprintf("%q is not an event name", e), "use some of "+strings.Join(WebhookEvents, ", ")+", or remove the key for all")
			}
		}
		if h.Timeout < 100*time.Millisecond || h.Timeout > 5*time.Minute {
			return keyError(key("timeout"), fmt.Sprintf("%s is out of range", h.Timeout), "use 100ms to 5m (the default is 5s)")
		}
	}
	return nil
}

// ReadSecrets reads every webhook's secretFile into its Secret and checks
// it, and checks that every profile's tokenFile holds a token. Only the
// server calls it: client commands that read the same file for tokens
// need not be able to read the secrets.
func (c *Config) ReadSecrets() error {
	for i, p := range c.Profiles {
		if p.TokenFile == "" {
			continue
		}
		if _, err := ReadTokenFile(p.TokenFile); err != nil {
			why := err.Error()
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				why = fmt.Sprintf("%s cannot be read (%v)", p.TokenFile, errors.Unwrap(err))
			}
			return keyError(fmt.Sprintf("profiles[%d].tokenFile", i), why, "make the file readable by pairgate and put the operator token in it, or give token: inline")
		}
	}
	for i := range c.Profiles {
		for j := range c.Profiles[i].Webhooks {
			h := &c.Profiles[i].Webhooks[j]
			if h.SecretFile == "" {
				continue
			}
			key := fmt.Sprintf("profiles[%d].webhooks[%d].secretFile", i, j)
			b, err := os.ReadFile(h.SecretFile)
			if err != nil {
				return keyError(key, fmt.Sprintf("%s cannot be read (%v)", h.SecretFile, errors.Unwrap(err)), "make the file readable by pairgate, or give secret: inline")
			}
			h.Secret = strings.TrimSpace(string(b))
			if _, err := h.SigningKey(); err != nil {
				return keyError(key, fmt.Sprintf("%s does not hold a Standard Webhooks secret: it %v", h.SecretFile, err), secretFix)
			}
		}
	}
	return nil
}

// LoadServing is Load for the server: the configuration with its webhook
// secret files read.
func LoadServing(path string, getenv func(string) string) (Config, error) {
	cfg, err := Load(path, getenv)
	if err != nil {
		return cfg, err
	}
	if err := cfg.ReadSecrets(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = path
		}
		return Config{}, err
	}
	return cfg, nil
}

// withoutUserinfo is raw with any user:password@ before its host left out,
// for messages; raw need not parse.
func withoutUserinfo(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	// Unparsable: cut what stands between "//" and the last "@" of the
	// authority.
	if i := strings.Index(raw, "//"); i >= 0 {
		rest := raw[i+2:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			return raw[:i+2] + "…@" + rest[at+1:]
		}
	}
	return raw
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testSecret is whsec_ + base64 of 32 bytes.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw6iUOYbVjMfo="

func TestWebhookParsesWithDefaults(t *testing.T) {
	cfg, err := Parse([]byte("profiles:\n  - name: a\n    webhooks:\n      - url: https://hooks.example/x?k=1\n        secret: "+testSecret+
		"\n      - url: http://127.0.0.1:9/y\n        secretFile: ~/hook\n        events: [node.pair.requested]\n        timeout: 2s\n"), env(map[string]string{"HOME": "/h"}))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	hooks := cfg.Profiles[0].Webhooks
	if len(hooks) != 2 || hooks[0].Timeout != DefaultWebhookTimeout || !hooks[0].Wants("node.renamed") ||
		hooks[1].SecretFile != "/h/hook" || hooks[1].Timeout != 2*time.Second || hooks[1].Wants("node.pair.resolved") || !hooks[1].Wants("node.pair.requested") {
		t.Fatalf("webhooks %+v", hooks)
	}
	if hooks[0].ID() == hooks[1].ID() || !strings.HasPrefix(hooks[0].ID(), "wh_") || hooks[0].RedactedURL() != "https://hooks.example/…" {
		t.Fatalf("ids %s %s, redacted %s", hooks[0].ID(), hooks[1].ID(), hooks[0].RedactedURL())
	}
	if key, err := hooks[0].SigningKey(); err != nil || len(key) != 32 {
		t.Fatalf("key %d bytes, %v", len(key), err)
	}
}

func TestWebhookValidationNamesKeyAndFix(t *testing.T) {
	hook := func(lines string) string {
		return "profiles:\n  - name: a\n  - name: b\n    webhooks:\n      - " + strings.ReplaceAll(lines, "\n", "\n        ") + "\n"
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"no secret", hook("url: https://h.example/"), "config f: profiles[1].webhooks[0].secret: missing: every webhook is signed; write secret: whsec_"},
		{"not whsec", hook("url: https://h.example/\nsecret: hunter2"), "config f: profiles[1].webhooks[0].secret: not a Standard Webhooks secret: it has no whsec_ prefix; write secret: whsec_"},
		{"not base64", hook("url: https://h.example/\nsecret: whsec_%%%"), "config f: profiles[1].webhooks[0].secret: not a Standard Webhooks secret: it is not base64 after whsec_"},
		{"too short", hook("url: https://h.example/\nsecret: whsec_c2hvcnQ="), "config f: profiles[1].webhooks[0].secret: not a Standard Webhooks secret: it decodes to 5 bytes; want 24 to 64"},
		{"both", hook("url: https://h.example/\nsecret: " + testSecret + "\nsecretFile: /s"), "config f: profiles[1].webhooks[0].secret: both secret and secretFile are set; keep one of them"},
		{"bad url", hook("url: ftp://h.example/\nsecret: " + testSecret), `config f: profiles[1].webhooks[0].url: "ftp://h.example/" is not an http(s) URL; write e.g. url: https://hooks.example/pairgate`},
		{"no url", hook("secret: " + testSecret), `config f: profiles[1].webhooks[0].url: "" is not an http(s) URL`},
		// The password of a URL refused is not echoed to the terminal and log.
		{"bad url with a password", hook("url: ftp://u:SEKRETPW@h.example/hook\nsecret: " + testSecret), `config f: profiles[1].webhooks[0].url: "ftp://h.example/hook" is not an http(s) URL`},
		{"unparsable url with a password", hook("url: http://u:SEKRETPW@[h.example/hook\nsecret: " + testSecret), `config f: profiles[1].webhooks[0].url: "http://…@[h.example/hook" is not an http(s) URL`},
		{"bad event", hook("url: https://h.example/\nsecret: " + testSecret + "\nevents: [node.pair.approved]"), `config f: profiles[1].webhooks[0].events[0]: "node.pair.approved" is not an event name; use some of node.pair.requested`},
		{"timeout", hook("url: https://h.example/\nsecret: " + testSecret + "\ntimeout: 0s"), "config f: profiles[1].webhooks[0].timeout: 0s is out of range; use 100ms to 5m"},
		{"unknown key", hook("url: https://h.example/\nsecret: " + testSecret + "\nretries: 3"), "config f: profiles[1].webhooks[0].retries: unknown key"},
		{"not a list", "profiles:\n  - name: a\n    webhooks: https://h.example/\n", "config f: profiles[0].webhooks: want a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := validationError(t, tc.yaml); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("error\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// validationError is what Parse then Validate say of a document, as if it
// were the file f; the document must be refused.
func validationError(t *testing.T, doc string) string {
	t.Helper()
	cfg, err := Parse([]byte(doc), env(map[string]string{"HOME": "/h"}))
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		t.Fatalf("accepted %q", doc)
	}
	if ce, ok := err.(*Error); ok {
		ce.File = "f"
	}
	return err.Error()
}

func TestWebhookSecretFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	path := filepath.Join(dir, "pairgate.yaml")
	os.WriteFile(path, []byte("profiles:\n  - name: a\n    stateDir: /s\n    webhooks:\n      - url: https://h.example/\n        secretFile: "+secret+"\n"), 0o600)
	e := env(map[string]string{"HOME": "/h"})
	if _, err := Load(path, e); err != nil {
		t.Fatalf("Load reads no secret file (client commands use it): %v", err)
	}
	_, err := LoadServing(path, e)
	if err == nil || !strings.HasPrefix(err.Error(), "config "+path+": profiles[0].webhooks[0].secretFile: "+secret+" cannot be read") {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(secret, []byte("not-a-secret\n"), 0o600)
	if _, err = LoadServing(path, e); err == nil || !strings.Contains(err.Error(), "does not hold a Standard Webhooks secret") {
		t.Fatalf("bad secret: %v", err)
	}
	os.WriteFile(secret, []byte(testSecret+"\n"), 0o600)
	cfg, err := LoadServing(path, e)
	if err != nil || cfg.Profiles[0].Webhooks[0].Secret != testSecret {
		t.Fatalf("%+v %v", cfg.Profiles[0].Webhooks, err)
	}
}

func TestPlainHTTPElsewhere(t *testing.T) {
	for url, want := range map[string]bool{
		"http://hooks.example/x": true, "http://10.0.0.2:80/": true, "https://hooks.example/": false,
		"http://127.0.0.1:8080/": false, "http://[::1]/": false, "http://localhost/": false,
	} {
		if got := (Webhook{URL: url}).PlainHTTPElsewhere(); got != want {
			t.Errorf("%s: %v, want %v", url, got, want)
		}
	}
}

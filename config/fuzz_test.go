package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig: any file either loads as a valid configuration or is
// refused with a *config.Error naming a key. Never a panic.
func FuzzLoadConfig(f *testing.F) {
	example, err := os.ReadFile("pairgate.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"", "listen: [", "profiles: {a: 1}", "profiles:\n  - name: a\n    ttl: -1s\n",
		"a: &a [x]\nb: [*a, *a]\n", "listen: 127.0.0.1:5\nlisten: 127.0.0.1:6\n",
		"profiles: " + strings.Repeat("[", 100), "? [a]\n: b\n", "--- \n...\n--- \n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), "pairgate.yaml")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, env(map[string]string{"HOME": "/h"}))
		if err == nil {
			if len(cfg.Profiles) == 0 {
				t.Fatalf("loaded without profiles: %q", raw)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key == "" || ce.File != path || ce.Fix == "" {
			t.Fatalf("refusal without a key and a fix: %v", err)
		}
	})
}

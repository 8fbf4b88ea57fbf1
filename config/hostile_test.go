package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The configuration loader refuses deep nesting, aliases and oversized
// files with an error that names the key path (as other key errors do).
func TestHostileConfigIsRefusedByKey(t *testing.T) {
	deepFlow := "profiles:\n  - name: a\n    autoApprove:\n      silentCidrs: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n"
	var deepBlock strings.Builder
	deepBlock.WriteString("profiles:\n  - name: a\n    retention:\n")
	for i := range 80 {
		deepBlock.WriteString(strings.Repeat("  ", i+3) + "decided:\n")
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"deep flow", deepFlow, "config f: profiles[0].autoApprove.silentCidrs" + strings.Repeat("[0]", MaxConfigDepth-4) + ": nested deeper than 64 levels (line 4); "},
		{"deep block", deepBlock.String(), "config f: profiles[0].retention" + strings.Repeat(".decided", MaxConfigDepth-3) + ": nested deeper than 64 levels"},
		{"alias", "listen: &l 127.0.0.1:5\nprofiles:\n  - name: a\n    listen: *l\n", "config f: profiles[0].listen: a YAML alias (*l, line 4); write the value out"},
		{"alias bomb", "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n", "config f: b[0]: a YAML alias (*a, line 2)"},
		{"oversized", "# " + strings.Repeat("x", MaxConfigBytes) + "\nlisten: 127.0.0.1:5\n", "config f: (file): the file is larger than 262144 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, env(map[string]string{"HOME": "/h"}))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want a *config.Error, got %v", err)
			}
			ce.File = "f"
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

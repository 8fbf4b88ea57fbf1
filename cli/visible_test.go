package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/confusable"
)

func TestVisible(t *testing.T) {
	for in, want := range map[string]string{
		"Kitchen iPad":                    "Kitchen iPad",
		"a\x1b[2Kb":                       `a\x1b[2Kb`,
		"\x1b]52;c;aGk=\x07":              `\x1b]52;c;aGk=\x07`,
		"nul\x00 del\x7f":                 `nul\x00 del\x7f`,
		"c1\u009b31m":                     `c1\u009b31m`,
		"evil\u202egpj.exe":               `evil\u202egpj.exe`,
		"iso\u2066x\u2069":                `iso\u2066x\u2069`,
		"bad\xffutf8":                     `bad\xffutf8`,
		"\u05d0\u200f right-to-left mark": "\u05d0\u200f right-to-left mark",
		// Characters that show nothing, so one name looks like another.
		"Kitchen\u00adiPad":          `Kitchen\u00adiPad`,
		"Kitchen\u200biPad\ufeff":    `Kitchen\u200biPad\ufeff`,
		"Kitchen\u2028iPad":          `Kitchen\u2028iPad`,
		"Kitchen iPad\U000E0041":     `Kitchen iPad\U000e0041`,
		"Kitchen\u3164iPad\u034f":    `Kitchen\u3164iPad\u034f`,
		"\U0001F468\u200d\U0001F469": "\U0001F468\u200d\U0001F469", // a joined emoji stays
		"\u2764\ufe0f":               "\u2764\ufe0f",               // as does its variation selector
	} {
		if got := visible(in); got != want {
			t.Errorf("visible(%q) = %q, want %q", in, got, want)
		}
	}
}

// Data stored before control characters were refused (an old import) is
// shown escaped by every human output, and --json escapes what
// encoding/json leaves raw (DEL, C1, bidi overrides).
func TestNodeDataIsShownEscaped(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	getenv := testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir})
	p := config.NewProfile("default", stateDir)
	if err := p.EnsureNodesDir(); err != nil {
		t.Fatal(err)
	}
	s, err := db.Open(context.Background(), db.Options{Path: p.DatabasePath(), KeyPath: p.KeyPath(), Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, _ := s.Request(ctx, db.RequestInput{NodeID: "paired-node"}, db.Origin{Actor: "test"})
	if _, err := s.Approve(ctx, r.Request.RequestID, db.Origin{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	s.Request(ctx, db.RequestInput{NodeID: "pending-node"}, db.Origin{Actor: "test"})
	s.Close()
	raw, err := sql.Open("sqlite", db.DSN(p.DatabasePath(), false))
	if err != nil {
		t.Fatal(err)
	}
	const name = "Den\x1b[1A\x1b[2K iPad\u202e\x7f\u009b"
	for _, q := range []string{
		`UPDATE nodes SET display_name = ?, platform = ?, caps = '["a\u001b"]'`,
		`UPDATE requests SET display_name = ?, remote_ip = ? WHERE status = 'pending'`,
	} {
		if _, err := raw.Exec(q, name, "x\x07"); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	srv := startServe(t, getenv)
	// Wide enough that no table wraps the name.
	getenv = testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": stateDir, "PAIRGATE_URL": srv.url, "COLUMNS": "250"})
	for _, args := range [][]string{
		{"nodes", "pending"}, {"nodes", "list"}, {"nodes", "status"},
		{"nodes", "describe", "--node", "paired-node"}, {"nodes", "pending", "--json"}, {"nodes", "status", "--json"},
	} {
		code, out, errs := cliRun(getenv, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		if strings.ContainsFunc(out, func(r rune) bool { return r != '\n' && db.IsHidden(r) }) {
			t.Errorf("%v printed a hidden character raw:\n%q", args, out)
		}
		want := `Den\x1b[1A\x1b[2K iPad\u202e\x7f\u009b`
		if strings.Contains(args[len(args)-1], "json") {
			want = `Den\u001b[1A\u001b[2K iPad\u202e\u007f\u009b`
			var v any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("%v: not JSON: %v", args, err)
			}
		}
		if !strings.Contains(out, want) {
			t.Errorf("%v does not show the name escaped as %s:\n%s", args, want, out)
		}
	}
	srv.stop(t)
}

// --json output carries invisible characters as escapes, astral ones as
// their UTF-16 pair, and decodes to the same strings.
func TestEscapeHiddenKeepsJSON(t *testing.T) {
	in, _ := json.Marshal(map[string]string{"n": "a\U000E0041b\u00adc\u202ed\u2764\ufe0f"})
	out := escapeHidden(in)
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["n"] != "a\U000E0041b\u00adc\u202ed\u2764\ufe0f" {
		t.Fatalf("%s decodes to %q (%v)", out, back["n"], err)
	}
	if strings.ContainsFunc(string(out), func(r rune) bool { return r != '\n' && confusable.Invisible(r) }) {
		t.Fatalf("%s holds an invisible character raw", out)
	}
}

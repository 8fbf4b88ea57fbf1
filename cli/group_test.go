package cli

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

// Each subcommand takes exactly its own flags beside the server's, and
// its --help lists exactly those.
func TestSubcommandsDeclareTheirFlags(t *testing.T) {
	server := []string{"json", "profile", "state-dir", "timeout", "token", "token-file", "url"}
	want := map[string][]string{
		"nodes pending": nil, "nodes list": nil, "nodes status": nil,
		"nodes describe": {"node"}, "nodes approve": nil, "nodes reject": nil,
		"nodes rename": {"name", "node"}, "nodes remove": {"node"},
		"webhooks list": nil, "webhooks redeliver": {"from"},
	}
	seen := 0
	for _, g := range []group{nodesCommands, webhooksCommands} {
		for _, e := range g.commands {
			name := g.name + " " + e.name
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			addClientFlags(fs)
			e.new().declare(fs)
			var got []string
			fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
			wantAll := slices.Sorted(slices.Values(append(slices.Clone(server), want[name]...)))
			if !slices.Equal(got, wantAll) {
				t.Errorf("%s declares %v, want %v", name, got, wantAll)
			}
			var help strings.Builder
			code := Run(t.Context(), append(strings.Fields(name), "--help"), testEnv(t, nil), nil, &help, io.Discard)
			for _, f := range wantAll {
				if code != exitOK || !strings.Contains(help.String(), "\n  --"+f) {
					t.Errorf("%s --help (exit %d) lacks --%s:\n%s", name, code, f, help.String())
				}
			}
			if strings.Count(help.String(), "\n  --") != len(wantAll) {
				t.Errorf("%s --help lists other flags:\n%s", name, help.String())
			}
			seen++
		}
	}
	if seen != len(want) {
		t.Fatalf("checked %d subcommands, want %d", seen, len(want))
	}
}

package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pairgate/pairgate/db"
)

// runProfiles is pairgate profiles: the profiles a server serves for the
// token, with their counts.
func runProfiles(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "profiles", "[--json]"+clientSynopsis)
	cf := addClientFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out := output{w: env.Stdout, json: *cf.json}
	c, _, name, err := cf.newConn(env)
	if err != nil {
		return out.failure(failed("profiles", err))
	}
	c.reads = true
	profiles, err := c.api.Profiles(ctx)
	if err != nil {
		return out.failure(failed("profiles", c.explain(ctx, err)))
	}
	if name != "" {
		// A profile named (--profile, or a /ws/NAME URL) is the one
		// listed: a documentation trial saw it ignored beside a token.
		i := slices.IndexFunc(profiles, func(p db.ServedProfile) bool { return p.Name == name })
		if i < 0 {
			names := make([]string, len(profiles))
			for i, p := range profiles {
				names[i] = p.Name
			}
			return out.failure(failed("profiles", &db.Error{Code: db.CodeNotFound,
				Message: fmt.Sprintf("the server serves no profile %q for this token; it opens %s", name, strings.Join(names, ", "))}))
		}
		profiles = profiles[i : i+1]
	}
	if *cf.json {
		return printJSON(env.Stdout, profiles)
	}
	rows := make([][]string, len(profiles))
	for i, p := range profiles {
		rows[i] = []string{p.Name, p.StateDir, fmt.Sprint(p.Pending), fmt.Sprint(p.Paired), fmt.Sprint(p.Connected)}
	}
	table(env.Stdout, terminalWidth(env, env.Stdout), []string{"Profile", "State dir", "Pending", "Paired", "Connected"}, rows)
	return nil
}

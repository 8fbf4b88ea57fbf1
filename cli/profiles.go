package cli

import (
	"context"
	"fmt"
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
	c, _, _, err := cf.newConn(env)
	if err != nil {
		return out.failure(failed("profiles", err))
	}
	profiles, err := c.api.Profiles(ctx)
	if err != nil {
		return out.failure(failed("profiles", c.explain(ctx, err)))
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

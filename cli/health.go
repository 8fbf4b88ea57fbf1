package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/client"
)

func runHealth(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "health", "[--url URL]")
	urlFlag := fs.String("url", "", "server `URL` (default $PAIRGATE_URL, else http://127.0.0.1:18789)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base, _, err := serverBase(serverURL(env, *urlFlag))
	if err != nil {
		return err
	}
	api, err := client.New(base, "", nil)
	if err != nil {
		return &usageError{msg: "health: bad --url: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ready, err := api.Ready(ctx)
	switch {
	case client.IsUnreachable(err):
		return fmt.Errorf("no pairgate answers at %s (%v); start one with `pairgate serve`", base, err)
	case client.IsTimeout(err):
		return fmt.Errorf("the server at %s did not answer /readyz in 5s", base)
	}
	if ready.Profiles != nil {
		b, _ := json.Marshal(ready) // a map of strings and a bool always marshal
		fmt.Fprintln(env.Stdout, string(b))
	}
	var refused *db.Error
	if errors.As(err, &refused) {
		if len(ready.Errors) == 0 {
			return fmt.Errorf("not ready (%s)", refused.Message)
		}
		var why []string
		for _, name := range slices.Sorted(maps.Keys(ready.Errors)) {
			why = append(why, name+": "+ready.Errors[name])
		}
		return fmt.Errorf("not ready: %s", strings.Join(why, "; "))
	}
	return err
}

// serverURL picks the server: --url, then $PAIRGATE_URL, then the default.
func serverURL(env Env, flagValue string) string {
	switch {
	case flagValue != "":
		return flagValue
	case env.Getenv("PAIRGATE_URL") != "":
		return env.Getenv("PAIRGATE_URL")
	}
	return "http://127.0.0.1:18789"
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	if client.IsUnreachable(err) {
		return fmt.Errorf("no pairgate answers at %s (%v); start one with `pairgate serve`", base, err)
	}
	if ready.Profiles != nil {
		b, _ := json.Marshal(ready) // a map of strings and a bool always marshal
		fmt.Fprintln(env.Stdout, string(b))
	}
	var refused *db.Error
	if errors.As(err, &refused) {
		return fmt.Errorf("not ready (%s)", refused.Message)
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

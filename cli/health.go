package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
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
	url := &base
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(*url, "/")+"/readyz", nil)
	if err != nil {
		return &usageError{msg: "health: bad --url: " + err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no pairgate answers at %s (%v); start one with `pairgate serve`", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintln(env.Stdout, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready (%s)", resp.Status)
	}
	return nil
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

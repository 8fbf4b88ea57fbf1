package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/pairgate/pairgate/config"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	profileFlags
	url   *string
	token *string
	json  *bool
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		profileFlags: addProfileFlags(fs),
		url:          fs.String("url", "", "server `URL` (default $PAIRGATE_URL, else http://127.0.0.1:18789)"),
		token:        fs.String("token", "", "operator `token` (default $OPENCLAW_GATEWAY_TOKEN, else <stateDir>/nodes/operator.token)"),
		json:         fs.Bool("json", false, "print JSON only"),
	}
}

// client talks to one served profile over the REST API.
type client struct {
	base        string // server URL
	token       string
	tokenSource string
	profile     string // served profile name
	http        *http.Client
}

// newClient resolves the server and the operator token.
func (f clientFlags) newClient(env Env) (*client, error) {
	c := &client{base: strings.TrimSuffix(serverURL(env, *f.url), "/"), http: &http.Client{Timeout: 30 * time.Second}}
	p := f.profile(env)
	switch {
	case *f.token != "":
		c.token, c.tokenSource = *f.token, "--token"
	case env.Getenv("OPENCLAW_GATEWAY_TOKEN") != "":
		c.token, c.tokenSource = env.Getenv("OPENCLAW_GATEWAY_TOKEN"), "$OPENCLAW_GATEWAY_TOKEN"
	default:
		token, err := config.ReadTokenFile(p.OperatorTokenPath())
		if err != nil {
			return nil, fmt.Errorf("no operator token: pass --token, set $OPENCLAW_GATEWAY_TOKEN, or start the server once so it writes %s (%v)", p.OperatorTokenPath(), err)
		}
		c.token, c.tokenSource = token, p.OperatorTokenPath()
	}
	return c, nil
}

// servedProfile is one entry of GET /api/v1/profiles.
type servedProfile struct {
	Name      string `json:"name"`
	StateDir  string `json:"stateDir"`
	Pending   int    `json:"pending"`
	Paired    int    `json:"paired"`
	Connected int    `json:"connected"`
}

// connect resolves server, token and profile: the served profile is the
// one whose state directory is the one the flags and environment choose.
func (f clientFlags) connect(ctx context.Context, env Env) (*client, error) {
	c, err := f.newClient(env)
	if err != nil {
		return nil, err
	}
	p := f.profile(env)
	var list struct {
		Profiles []servedProfile `json:"profiles"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/profiles", nil, &list); err != nil {
		return nil, err
	}
	var served []string
	for _, sp := range list.Profiles {
		if filepath.Clean(sp.StateDir) == filepath.Clean(p.StateDir) {
			c.profile = sp.Name
			return c, nil
		}
		served = append(served, fmt.Sprintf("%s (%s)", sp.Name, sp.StateDir))
	}
	return nil, fmt.Errorf("the server at %s serves no profile with state directory %s; with this token it serves: %s (choose with --state-dir, --profile or $OPENCLAW_STATE_DIR)",
		c.base, p.StateDir, strings.Join(served, ", "))
}

// apiError is an error answer of the server.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string { return e.message }

// do makes one API call; path is absolute or relative to the profile.
func (c *client) do(ctx context.Context, method, path string, body, into any) error {
	if !strings.HasPrefix(path, "/") {
		path = "/api/v1/profiles/" + url.PathEscape(c.profile) + "/" + path
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return &usageError{msg: "bad --url: " + err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("no pairgate answers at %s; start one with `pairgate serve` (or point --url / $PAIRGATE_URL at it)", c.base)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		json.Unmarshal(raw, &e)
		msg := e.Error.Message
		if msg == "" {
			msg = resp.Status
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			msg = fmt.Sprintf("the server refused the operator token read from %s", c.tokenSource)
		case http.StatusTooManyRequests:
			msg += " (too many wrong tokens from this address)"
		}
		return &apiError{status: resp.StatusCode, message: msg}
	}
	if into == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", c.base, err)
	}
	return nil
}

// failed prefixes a command's failure the way OpenClaw's CLI does:
// "nodes approve failed: <message>".
func failed(cmd string, err error) error {
	var ue *usageError
	if err == nil || errors.As(err, &ue) {
		return err
	}
	return &commandError{cmd: cmd, err: err}
}

type commandError struct {
	cmd string
	err error
}

func (e *commandError) Error() string { return e.cmd + " failed: " + e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/client"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	profileFlags
	url       *string
	token     *string
	tokenFile *string
	json      *bool
	timeout   *time.Duration
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		profileFlags: addProfileFlags(fs),
		url:          fs.String("url", "", "server `URL`: http(s):// or ws(s)://, ws://HOST/ws/NAME naming a profile (default $PAIRGATE_URL, else http://127.0.0.1:18789)"),
		token:        fs.String("token", "", "operator `token` (default $OPENCLAW_GATEWAY_TOKEN, else the profile's token in $PAIRGATE_CONFIG, else <stateDir>/nodes/operator.token)"),
		tokenFile:    fs.String("token-file", "", "`file` holding the operator token, instead of --token (which other users see in the process list)"),
		json:         fs.Bool("json", false, "print JSON only"),
		timeout:      fs.Duration("timeout", 30*time.Second, "how long to wait for each answer of the server, e.g. 10s or 2m"),
	}
}

// conn is the command line's connection to one served profile.
type conn struct {
	api         *client.Client
	tokenSource string // where the operator token was read from
	profile     string // served profile name
	// named says the command line named the profile (its calls go to it
	// without asking which profiles the token opens).
	named bool
	// timeout bounds each call (--timeout).
	timeout time.Duration
	// reads says the command changes nothing (a list, a lookup).
	reads bool
}

// newConn resolves the server, the local profile (resolveAs) and the
// operator token. name is the served profile's name when the command
// line gives one (--profile, or a /ws/NAME URL), else "".
func (f clientFlags) newConn(env Env) (c *conn, local config.Profile, name string, err error) {
	if *f.timeout <= 0 {
		return nil, local, "", &usageError{msg: fmt.Sprintf("--timeout %s: give a positive duration such as 30s", *f.timeout)}
	}
	base, urlProfile, err := serverBase(serverURL(env, *f.url))
	if err != nil {
		return nil, local, "", err
	}
	if *f.name != "" && urlProfile != "" && *f.name != urlProfile {
		return nil, local, "", &usageError{msg: fmt.Sprintf("--url names profile %q (/ws/%s) and --profile %q: give one of them", urlProfile, urlProfile, *f.name)}
	}
	name = cmp.Or(*f.name, urlProfile)
	if local, err = f.resolveAs(env, name); err != nil {
		return nil, local, name, err
	}
	token, source, err := f.operatorToken(env, local)
	if err != nil {
		return nil, local, name, err
	}
	api, err := client.New(base, token, &http.Client{Timeout: *f.timeout})
	if err != nil {
		return nil, local, name, &usageError{msg: "bad --url: " + err.Error()}
	}
	return &conn{api: api, tokenSource: source, timeout: *f.timeout}, local, name, nil
}

// serverBase turns --url into the REST API's base: ws:// and wss:// (the
// form openclaw's --url takes) are the same server as http:// and https://,
// and a /ws/NAME path names a profile.
func serverBase(raw string) (base, profile string, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", "", &usageError{msg: fmt.Sprintf("bad --url %q: want http://HOST:PORT (or ws://HOST:PORT as openclaw takes it)", raw)}
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", "", &usageError{msg: fmt.Sprintf("bad --url %q: the scheme must be http, https, ws or wss", raw)}
	}
	path := strings.TrimRight(u.Path, "/")
	if i := strings.LastIndex(path, "/ws/"); i >= 0 && path[i+4:] != "" && !strings.Contains(path[i+4:], "/") {
		profile, path = path[i+4:], path[:i] // behind a proxy's prefix too
	}
	// The operator page's address (the one serve logs) is the server's.
	if strings.HasSuffix(path, "/ui") {
		path = strings.TrimSuffix(path, "/ui")
	}
	// The REST API's own paths (a base copied from docs/rest.md) are the
	// server's root; any other path is a reverse proxy's prefix.
	if i := strings.Index(path+"/", "/api/v1/"); i >= 0 {
		rest := strings.TrimPrefix(path[i:], "/api/v1")
		if p, ok := strings.CutPrefix(rest, "/profiles/"); ok && p != "" && !strings.Contains(p, "/") {
			profile = p
		}
		path = path[:i]
	}
	u.Path = path
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), profile, nil
}

// operatorToken finds the operator token: --token, $OPENCLAW_GATEWAY_TOKEN,
// the profile's token in the server's configuration ($PAIRGATE_CONFIG),
// or the token file the server generated in the local state directory.
func (f clientFlags) operatorToken(env Env, p config.Profile) (token, source string, err error) {
	token, source, err = f.findOperatorToken(env, p)
	if err != nil {
		return "", "", err
	}
	// HTTP cannot carry it: the request would never leave (an outside
	// trial was told the connection ended, which an approve reads as
	// "maybe done").
	if i := strings.IndexFunc(token, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return "", "", &usageError{msg: fmt.Sprintf("the operator token from %s holds a line break or another control character (byte %d): a token is one line of printable characters; nothing was sent", source, i+1)}
	}
	return token, source, nil
}

func (f clientFlags) findOperatorToken(env Env, p config.Profile) (token, source string, err error) {
	if *f.token != "" && *f.tokenFile != "" {
		return "", "", &usageError{msg: "--token and --token-file both give the token: give one of them"}
	}
	if *f.token != "" {
		return *f.token, "--token", nil
	}
	if *f.tokenFile != "" {
		t, err := config.ReadTokenFile(*f.tokenFile)
		if err != nil {
			return "", "", fmt.Errorf("--token-file: %w", err)
		}
		return t, *f.tokenFile, nil
	}
	if t := env.Getenv("OPENCLAW_GATEWAY_TOKEN"); t != "" {
		return t, "$OPENCLAW_GATEWAY_TOKEN", nil
	}
	switch {
	case p.Token != "":
		return p.Token, p.OperatorTokenSource() + " ($PAIRGATE_CONFIG)", nil
	case p.TokenFile != "":
		t, err := config.ReadTokenFile(p.TokenFile)
		if err != nil {
			return "", "", fmt.Errorf("no operator token: the tokenFile of profile %q: %v", p.Name, err)
		}
		return t, p.TokenFile, nil
	}
	t, err := config.ReadTokenFile(p.OperatorTokenPath())
	if err != nil {
		why := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			why = p.OperatorTokenPath() + " does not exist on this machine"
		}
		return "", "", fmt.Errorf("no operator token: %s; pass --token, set $OPENCLAW_GATEWAY_TOKEN, or set $PAIRGATE_CONFIG to the server's configuration (for profiles with token: or tokenFile:); a server with no token configured writes that file into its own state directory when it first starts", why)
	}
	return t, p.OperatorTokenPath(), nil
}

// connect resolves server, token and profile. A profile named on the
// command line is the server's profile of that name, and the command's
// calls go straight to it: a wrong token counts against that profile
// only, as the server counts. Otherwise it is the served profile whose
// state directory the flags and environment choose, or, when none was
// chosen and the token opens a single profile, that one.
func (f clientFlags) connect(ctx context.Context, env Env) (*conn, error) {
	c, local, name, err := f.newConn(env)
	if err != nil {
		return nil, err
	}
	if name != "" {
		c.profile, c.named = name, true
		return c, nil
	}
	profiles, err := c.api.Profiles(ctx)
	switch {
	case db.ErrorCode(err) == db.CodeRateLimited:
		// Wrong tokens tried against every profile at once lock this
		// address out of the list; each profile keeps its own count.
		return nil, &worded{fmt.Sprintf("%v; a profile named with --profile NAME is counted on its own", err), err}
	case db.ErrorCode(err) == db.CodeUnauthorized:
		return nil, &worded{c.refusedToken(ctx, local.StateDir).Error(), err}
	case err != nil:
		return nil, c.explain(ctx, err)
	}
	served := make([]string, len(profiles))
	for i, sp := range profiles {
		served[i] = fmt.Sprintf("%s (%s)", sp.Name, sp.StateDir)
	}
	p := local
	for _, sp := range profiles {
		if config.SameDir(sp.StateDir, p.StateDir) {
			c.profile = sp.Name
			return c, nil
		}
	}
	chosen := *f.stateDir != "" || env.Getenv("OPENCLAW_STATE_DIR") != ""
	if !chosen && len(profiles) == 1 {
		c.profile = profiles[0].Name
		return c, nil
	}
	return nil, &db.Error{Code: db.CodeNotFound, Message: fmt.Sprintf("the server at %s serves no profile with state directory %s; this token opens: %s (name one with --profile NAME)",
		c.api.URL(), p.StateDir, strings.Join(served, ", "))}
}

// refusedToken explains a refused operator token: where it was read from,
// and which profiles the server has (GET /readyz names them without a
// token), since a token file of a state directory the server does not
// serve is the usual cause.
func (c *conn) refusedToken(ctx context.Context, stateDir string) error {
	msg := c.refused().Error()
	names := c.servedNames(ctx)
	// A right token is refused too while this address is locked out of
	// the list of profiles (10 wrong ones a minute): a named profile's
	// own answer says so, with the wait.
	const lockedOut = " (or this address is locked out after too many wrong tokens, which a command naming the profile with --profile NAME says)"
	switch {
	case names == "":
		return errors.New(msg + lockedOut)
	case strings.HasPrefix(c.tokenSource, stateDir+string(filepath.Separator)):
		return fmt.Errorf("%s: it serves no profile at %s, or not with that token; it serves the profiles %s: name one with --profile NAME and give its token (--token, or $PAIRGATE_CONFIG)%s",
			msg, stateDir, names, lockedOut)
	}
	return fmt.Errorf("%s; it serves the profiles %s, and this token opens none of them%s", msg, names, lockedOut)
}

// servedNames lists the server's profiles, sorted, as GET /readyz names
// them without a token; "" when it cannot tell.
func (c *conn) servedNames(ctx context.Context) string {
	ready, err := c.api.Ready(ctx)
	if err != nil {
		return ""
	}
	return strings.Join(slices.Sorted(maps.Keys(ready.Profiles)), ", ")
}

func (c *conn) refused() error {
	return fmt.Errorf("the server at %s refused the operator token read from %s", c.api.URL(), c.tokenSource)
}

// explain words a failed call for the operator: the server's refusal by
// its code, a server that does not answer by where it was looked for.
func (c *conn) explain(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case client.IsUnreachable(err):
		return &worded{fmt.Sprintf("no pairgate answers at %s; start one with `pairgate serve` (or point --url / $PAIRGATE_URL at it)", c.api.URL()), err}
	case client.IsInterrupted(err):
		return &worded{fmt.Sprintf("the connection to the server at %s ended before it answered (was it stopping?); what was asked may or may not be done: `pairgate nodes list` shows what was done", c.api.URL()), err}
	case client.IsTimeout(err) && c.reads:
		// A read changes nothing: it may be large (a trial's list of
		// 100,000 nodes took 30 s beside ten exports) or the server busy.
		return &worded{fmt.Sprintf("the server at %s did not answer in %s; this command changes nothing: the server may be busy or the answer large (--timeout waits longer), and `pairgate health` shows whether its database is stalled", c.api.URL(), c.timeout), err}
	case client.IsTimeout(err):
		// A change may still be made: the server may be waiting on its
		// database (`pairgate health` says), and a write it began goes
		// through once that answers.
		return &worded{fmt.Sprintf("the server at %s did not answer in %s; what was asked may still be done once it does: `pairgate health` shows whether its database is stalled, `pairgate nodes list` what was done (--timeout waits longer)", c.api.URL(), c.timeout), err}
	case db.ErrorCode(err) == db.CodeUnauthorized && c.named:
		return &worded{c.refusedNamed(ctx).Error(), err}
	case db.ErrorCode(err) == db.CodeUnauthorized:
		return &worded{c.refused().Error(), err}
	}
	return err
}

// worded is a failure worded for the operator, which still unwraps to
// what failed (for --json's code).
type worded struct {
	msg   string
	cause error
}

func (w *worded) Error() string { return w.msg }
func (w *worded) Unwrap() error { return w.cause }

// refusedNamed explains a token the named profile refused, with the
// profiles the server has.
func (c *conn) refusedNamed(ctx context.Context) error {
	msg := fmt.Sprintf("%s for profile %q", c.refused(), c.profile)
	if names := c.servedNames(ctx); names != "" {
		msg += "; it serves the profiles " + names
	}
	return errors.New(msg)
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

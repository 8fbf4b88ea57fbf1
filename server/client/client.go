// Package client is a typed client of pairgate's REST API: one method a
// route, domain types in and out, and every refusal of the server as the
// *db.Error it was on the server's side (its code, message and details,
// and Retry-After). It speaks HTTP with the standard library only.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
)

// maxAnswer bounds what is read of one answer (the lists of a large
// profile are the largest).
const maxAnswer = 64 << 20

// Client calls one pairgate server with one operator token.
type Client struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string
	http  *http.Client
}

// New returns a client of the server at base (http:// or https://, with
// an optional path prefix) that sends token as the operator token ("" for
// none). hc nil is http.DefaultClient; every call also takes a context.
func New(base, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: want a server URL http(s)://HOST[:PORT], got %q", base)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), token: token, http: hc}, nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base }

// endpoint is the one place paths are built: each segment is escaped on
// its own (url.PathEscape), so an id holding "?", "#", "%" or a space
// stays one segment. "." and ".." go as they are: pairgate routes them as
// names. An id holding "/" goes as %2F (the server decodes it back).
func (c *Client) endpoint(query url.Values, segments ...string) string {
	var b strings.Builder
	b.WriteString(c.base)
	for _, s := range segments {
		b.WriteString("/" + url.PathEscape(s))
	}
	if len(query) > 0 {
		b.WriteString("?" + query.Encode())
	}
	return b.String()
}

// api is the path of a route under /api/v1.
func (c *Client) api(query url.Values, segments ...string) string {
	return c.endpoint(query, append([]string{"api", "v1"}, segments...)...)
}

// profile is the path of a route of one profile.
func (c *Client) profile(profile string, query url.Values, segments ...string) string {
	return c.api(query, append([]string{"profiles", profile}, segments...)...)
}

// call sends one request and decodes a 2xx answer into into (nil: the
// answer is not read). A refusal is a *db.Error; a server that does not
// answer is the *url.Error of net/http.
func (c *Client) call(ctx context.Context, method, target string, body, into any) error {
	status, raw, err := c.exchange(ctx, method, target, body)
	switch {
	case err != nil:
		return err
	case into == nil || status == http.StatusNoContent:
		return nil
	}
	return c.decode(raw, into)
}

// exchange sends one request and reads its answer, turning a status of
// 300 or more into the server's error (raw is the answer either way).
func (c *Client) exchange(ctx context.Context, method, target string, body any) (int, []byte, error) {
	resp, err := c.send(ctx, method, target, body)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, raw, answerError(resp, raw)
	}
	return resp.StatusCode, raw, nil
}

func (c *Client) send(ctx context.Context, method, target string, body any) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

// newRequest is a request with the operator token and, with a body, the
// body as JSON.
func (c *Client) newRequest(ctx context.Context, method, target string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func (c *Client) decode(raw []byte, into any) error {
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", c.base, err)
	}
	return nil
}

// answerError rebuilds the server's error from its answer:
// {"error":{"code","message","details"}} and Retry-After. An answer that
// is not pairgate's (a proxy's page) keeps its status line as the message
// and a code from its status.
func answerError(resp *http.Response, raw []byte) *db.Error {
	var body struct {
		Error struct {
			Code    db.Code         `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	e := &db.Error{Code: statusCode(resp.StatusCode), Message: resp.Status}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		if len(body.Error.Details) > 0 && string(body.Error.Details) != "null" {
			e.Details = body.Error.Details
		}
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}

// statusCodes name the code of a status, for answers that carry none;
// any other status is internal.
var statusCodes = map[int]db.Code{
	http.StatusBadRequest:            db.CodeInvalid,
	http.StatusUnauthorized:          db.CodeUnauthorized,
	http.StatusForbidden:             db.CodeForbidden,
	http.StatusNotFound:              db.CodeNotFound,
	http.StatusMethodNotAllowed:      db.CodeMethodNotAllowed,
	http.StatusRequestTimeout:        db.CodeTimeout,
	http.StatusConflict:              db.CodeConflict,
	http.StatusGone:                  db.CodeExpired,
	http.StatusRequestEntityTooLarge: db.CodeTooLarge,
	http.StatusUnsupportedMediaType:  db.CodeUnsupportedMediaType,
	http.StatusTooManyRequests:       db.CodeRateLimited,
	http.StatusBadGateway:            db.CodeUnavailable,
	http.StatusServiceUnavailable:    db.CodeUnavailable,
	http.StatusGatewayTimeout:        db.CodeUnavailable,
}

func statusCode(status int) db.Code {
	if code, ok := statusCodes[status]; ok {
		return code
	}
	return db.CodeInternal
}

// IsUnreachable says whether err means that no server could be reached
// (refused, unresolvable: the connection was never made), as opposed to
// a server's refusal, a call that timed out (IsTimeout) or a connection
// that ended before its answer (IsInterrupted).
func IsUnreachable(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ue) && !ue.Timeout() && errors.As(err, &oe) && oe.Op == "dial"
}

// IsInterrupted says err is a call whose connection ended before its
// answer came (a server stopping, a proxy dropping it): what was asked
// may or may not have been done.
func IsInterrupted(err error) bool {
	var ue *url.Error
	var de *db.Error
	return errors.As(err, &ue) && !ue.Timeout() && !IsUnreachable(err) && !errors.As(err, &de)
}

// IsTimeout says err is a call that got no answer in the client's time:
// a server that does not answer, or one whose answer waits (a write on a
// stalled database).
func IsTimeout(err error) bool {
	var ue *url.Error
	var de *db.Error
	return errors.As(err, &ue) && ue.Timeout() && !errors.As(err, &de)
}

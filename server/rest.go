package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/rpc"
)

// maxBody bounds every request body the API reads.
const maxBody = 64 << 10

// ctxProfile is where requireOperator leaves the resolved profile.
const ctxProfile = "pairgate.profile"

// restSession is the dispatcher's view of an authenticated REST caller: the
// profile's operator token grants every scope.
func restSession(c echo.Context, p *Profile) *rpc.Session {
	return &rpc.Session{Profile: p.rpc, Role: rpc.RoleOperator, Scopes: []string{rpc.ScopeAdmin},
		RemoteIP: c.RealIP(), Actor: "rest"}
}

// verifierSession is the dispatcher's view of a caller of verify that
// presented no operator token: it may verify a node's token and nothing
// else.
func verifierSession(c echo.Context, p *Profile) *rpc.Session {
	return &rpc.Session{Profile: p.rpc, Role: rpc.RoleVerifier, RemoteIP: c.RealIP(), Actor: "rest"}
}

func bearer(c echo.Context) string {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	// The scheme is case-insensitive (RFC 9110 §11.1): "bearer" and
	// "BEARER" are Bearer.
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	return ""
}

// limited answers 429 with Retry-After while the caller's address is
// locked out of class on profile.
func (s *Server) limited(c echo.Context, profile, class string) error {
	if retry, locked := s.guard.Locked(profile, class, c.RealIP()); locked {
		return rpc.LockedError(class, retry)
	}
	return nil
}

// profileParam resolves :profile (404 naming the known ones).
func (s *Server) profileParam(c echo.Context, own *Profile) (*Profile, error) {
	p := s.profileAt(own, c.Param("profile"))
	if p == nil {
		return nil, apiError(db.CodeNotFound, "%s", s.unknownProfile(own, c.Param("profile")))
	}
	return p, nil
}

// unknownProfile says why name is not served here: on a profile's own
// address only that profile is.
func (s *Server) unknownProfile(own *Profile, name string) string {
	if own != nil {
		where := "is served on the server's main address, not here"
		if s.byName[name] == nil {
			where = "is not served by this server"
		}
		return fmt.Sprintf("this address serves only profile %q (its own listen address); %q %s", own.Config.Name, name, where)
	}
	return fmt.Sprintf("unknown profile %q; known: %s", name, strings.Join(s.profileNames(), ", "))
}

// requireOperator resolves :profile (404 when unknown), refuses an address
// locked out of its operator token (429), and demands that token (401,
// counted by the failed-attempt limiter).
func (s *Server) requireOperator(own *Profile) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, err := s.profileParam(c, own)
			if err != nil {
				return err
			}
			if err := s.limited(c, p.Config.Name, rpc.ClassOperator); err != nil {
				return err
			}
			if err := s.checkBearer(c, p); err != nil {
				return err
			}
			c.Set(ctxProfile, p)
			return next(c)
		}
	}
}

func (s *Server) checkBearer(c echo.Context, p *Profile) error {
	token := bearer(c)
	if token == "" {
		return apiError(db.CodeUnauthorized, "missing operator token: send Authorization: Bearer <the operator token of profile %q>", p.Config.Name)
	}
	if !p.Authorized(token) {
		s.guard.Failed(p.Config.Name, rpc.ClassOperator, c.RealIP())
		return apiError(db.CodeUnauthorized, "wrong operator token for profile %q", p.Config.Name)
	}
	return nil
}

func profileOf(c echo.Context) *Profile { return c.Get(ctxProfile).(*Profile) }

// readObject reads a JSON object body strictly: bounded in size (413), one
// value with no trailing data, no duplicate keys at any depth (400). Field
// checks are left to the method's schema.
func readObject(c echo.Context) (json.RawMessage, error) {
	body, err := readBody(c, maxBody, bodyReadTimeout)
	if err != nil {
		return nil, err
	}
	if err := db.CheckUTF8JSON(body); err != nil {
		return nil, apiError(db.CodeInvalid, "invalid JSON body: %s", err)
	}
	if err := db.CheckJSONObject(body); err != nil {
		return nil, apiError(db.CodeInvalid, "invalid JSON body: %s%s", err, formHint(c))
	}
	return body, nil
}

// formHint says, for a body sent as a form, that the API takes JSON:
// curl -d sends JSON as a form too, which is read as JSON all the same,
// so only a body that is not JSON is told.
func formHint(c echo.Context) string {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if mt == echo.MIMEApplicationForm || mt == echo.MIMEMultipartForm {
		return fmt.Sprintf(" (the body was sent as a form, %s: the API takes a JSON object, e.g. {\"nodeId\": \"…\"})", mt)
	}
	return ""
}

// readBody reads a request body of at most limit bytes (413) within
// timeout of now (408), then lifts the read deadline.
func readBody(c echo.Context, limit int64, timeout time.Duration) ([]byte, error) {
	rc := http.NewResponseController(c.Response())
	rc.SetReadDeadline(time.Now().Add(timeout))
	r := http.MaxBytesReader(c.Response(), c.Request().Body, limit)
	var body []byte
	var err error
	switch n := c.Request().ContentLength; {
	case n > limit:
		return nil, apiError(db.CodeTooLarge, "request body larger than %d bytes", limit)
	case n >= 0:
		// Read into a buffer of the announced size, not one grown by
		// doubling: an import's body may be 256 MiB.
		body = make([]byte, n)
		_, err = io.ReadFull(r, body)
	default:
		body, err = io.ReadAll(r)
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, apiError(db.CodeTooLarge, "request body larger than %d bytes", limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, apiError(db.CodeTimeout, "the request body did not arrive within %s", timeout)
	case err != nil:
		return nil, apiError(db.CodeInvalid, "cannot read the request body")
	}
	rc.SetReadDeadline(time.Time{})
	return body, nil
}

// params builds a method's params from path values and an optional body.
func params(kv ...string) json.RawMessage {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return mustJSON(m)
}

// mergeParams adds path values to a body object (a body may not set them).
func mergeParams(body json.RawMessage, kv ...string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, apiError(db.CodeInvalid, "invalid JSON body: %s", err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if _, ok := m[kv[i]]; ok {
			return nil, apiError(db.CodeInvalid, "%s comes from the path; remove it from the body", kv[i])
		}
		m[kv[i]] = mustJSON(kv[i+1])
	}
	return mustJSON(m), nil
}

// call runs one dispatcher method for a REST caller and writes its payload.
func (s *Server) call(c echo.Context, method string, raw json.RawMessage, status int) error {
	p := profileOf(c)
	out, err := s.dispatch.Call(c.Request().Context(), restSession(c, p), method, raw)
	if err != nil {
		return err
	}
	if status == http.StatusNoContent {
		return c.NoContent(status)
	}
	if long, ok := out.(longAnswer); ok && !c.QueryParams().Has("pretty") {
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		c.Response().WriteHeader(status)
		if c.Request().Method != http.MethodHead {
			long.WriteJSON(c.Response()) // a client gone mid-answer: nothing to say
		}
		return nil
	}
	return c.JSON(status, out)
}

// longAnswer is an answer written as it is encoded, not encoded whole
// first (db.NodeList: every paired node).
type longAnswer interface{ WriteJSON(io.Writer) error }

// handleProfiles lists the profiles the bearer token opens.
func (s *Server) handleProfiles(own *Profile) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.limited(c, rpc.AnyProfile, rpc.ClassOperator); err != nil {
			return err
		}
		token := bearer(c)
		out := []db.ServedProfile{}
		opensElsewhere := false
		for _, p := range s.profiles {
			// A profile this address is locked out of is not listed: a
			// right guess must not be confirmed here while it is.
			if _, locked := s.guard.Locked(p.Config.Name, rpc.ClassOperator, c.RealIP()); locked || !p.Authorized(token) {
				continue
			}
			if own != nil && p != own {
				// The token opens a profile served on the main address,
				// where it is listed: no guess, not counted.
				opensElsewhere = true
				continue
			}
			counts, err := p.Store.Counts(c.Request().Context())
			if err != nil {
				return err
			}
			out = append(out, db.ServedProfile{Name: p.Config.Name, StateDir: p.Config.StateDir, Counts: counts, Connected: p.hub.ConnectedNodes()})
		}
		if len(out) == 0 {
			if token != "" && !opensElsewhere {
				s.guard.Failed(rpc.AnyProfile, rpc.ClassOperator, c.RealIP())
			}
			return apiError(db.CodeUnauthorized, "send Authorization: Bearer <operator token>; the answer lists the profiles it opens")
		}
		return c.JSON(http.StatusOK, map[string]any{"profiles": out})
	}
}

func (s *Server) handlePending(c echo.Context) error {
	pending, err := profileOf(c).Store.Pending(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"pending": pending})
}

func (s *Server) handleRequestStatus(c echo.Context) error {
	st, err := profileOf(c).Store.RequestStatus(c.Request().Context(), c.Param("requestId"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

// handleCreateRequest is node.pair.request on behalf of a node: 201 when
// it made a request, 200 when the node already had one pending.
func (s *Server) handleCreateRequest(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	out, err := s.dispatch.Call(c.Request().Context(), restSession(c, profileOf(c)), "node.pair.request", body)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res, ok := out.(db.RequestResult); ok && res.Created {
		status = http.StatusCreated
	}
	return c.JSON(status, out)
}

func (s *Server) handleApprove(c echo.Context) error {
	if err := noBody(c); err != nil {
		return err
	}
	return s.call(c, "node.pair.approve", params("requestId", c.Param("requestId")), http.StatusOK)
}

func (s *Server) handleReject(c echo.Context) error {
	if err := noBody(c); err != nil {
		return err
	}
	return s.call(c, "node.pair.reject", params("requestId", c.Param("requestId")), http.StatusOK)
}

// noBody refuses a body on a route that takes none, but {} and null (a
// client that always sends one): a {"displayName": …} sent with an
// approval was ignored in silence.
func noBody(c echo.Context) error {
	body, err := readBody(c, maxBody, bodyReadTimeout)
	if err != nil {
		return err
	}
	if t := string(bytes.TrimSpace(body)); t != "" && t != "{}" && t != "null" {
		return apiError(db.CodeInvalid, "%s %s takes no body; send none (or {})", c.Request().Method, c.Request().URL.Path)
	}
	return nil
}

func (s *Server) handleNodes(c echo.Context) error {
	return s.call(c, "node.list", nil, http.StatusOK)
}

func (s *Server) handleNode(c echo.Context) error {
	return s.call(c, "node.describe", params("nodeId", c.Param("nodeId")), http.StatusOK)
}

func (s *Server) handleRename(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	raw, err := mergeParams(body, "nodeId", c.Param("nodeId"))
	if err != nil {
		return err
	}
	return s.call(c, "node.rename", raw, http.StatusOK)
}

func (s *Server) handleRemove(c echo.Context) error {
	if err := noBody(c); err != nil {
		return err
	}
	return s.call(c, "node.pair.remove", params("nodeId", c.Param("nodeId")), http.StatusNoContent)
}

// handleVerify checks a node's token. Nodes call it without an operator
// token; their failures, unreadable bodies included, count toward the
// limiter's node-token class of the profile, so tokens cannot be guessed
// at speed. It takes only application/json: a web page cannot send that
// cross-site without the browser asking first.
func (s *Server) handleVerify(own *Profile) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := s.profileParam(c, own)
		if err != nil {
			return err
		}
		if err := s.limited(c, p.Config.Name, rpc.ClassNode); err != nil {
			return err
		}
		if err := requireJSON(c); err != nil {
			return err
		}
		sess := verifierSession(c, p)
		operator := p.Authorized(bearer(c))
		if operator {
			sess = restSession(c, p)
		}
		fail := func() {
			if !operator {
				s.guard.Failed(p.Config.Name, rpc.ClassNode, c.RealIP())
			}
		}
		body, err := readObject(c)
		if err != nil {
			fail()
			return err
		}
		out, err := s.dispatch.Call(c.Request().Context(), sess, "node.pair.verify", body)
		if err != nil {
			if statusOf(err) < 500 {
				fail()
			}
			return err
		}
		if v, ok := out.(db.Verification); ok && !v.OK {
			fail()
		}
		return c.JSON(http.StatusOK, out)
	}
}

// requireJSON refuses a body that does not say it is JSON (415).
func requireJSON(c echo.Context) error {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return apiError(db.CodeUnsupportedMediaType, "send the body as Content-Type: application/json")
	}
	return nil
}

// handleRPC mirrors OpenClaw's admin RPC route: {method, params} through
// the same dispatcher as the WebSocket.
func (s *Server) handleRPC(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	var req struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Method == "" {
		return apiError(db.CodeInvalid, `want {"method": "<name>", "params": {...}} and nothing else`)
	}
	out, err := s.dispatch.Call(c.Request().Context(), restSession(c, profileOf(c)), req.Method, req.Params)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "payload": out})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and raw JSON reach here
	}
	return b
}

package server

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/client"
)

type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResponse) decode(t testing.TB, into any) {
	t.Helper()
	if err := json.Unmarshal(r.body, into); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r apiResponse) errorMessage() string {
	var e errorBody
	json.Unmarshal(r.body, &e)
	return e.Error.Message
}

// api makes one HTTP call; token "" sends no Authorization header.
func (ts *testServer) api(t testing.TB, method, path, token, body string, headers ...string) apiResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, ts.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func (ts *testServer) mustAPI(t testing.TB, status int, method, path, body string, into any) {
	t.Helper()
	r := ts.api(t, method, path, testToken, body)
	if r.status != status {
		t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.body, status)
	}
	if into != nil {
		r.decode(t, into)
	}
}

const base = "/api/v1/profiles/default"

// client is a typed REST client of ts with token ("" sends none).
func (ts *testServer) client(t testing.TB, token string) *client.Client {
	t.Helper()
	c, err := client.New(ts.url, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// refusal is the *db.Error a call was refused with.
func refusal(t testing.TB, err error) *db.Error {
	t.Helper()
	var e *db.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want a refusal of the server", err)
	}
	return e
}

func TestRESTPairingFlow(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	api, node := ts.client(t, testToken), ts.client(t, "")
	created, err := api.Request(ctx, "default", client.NodeRequest{NodeID: "kitchen-ipad", NodeMeta: db.NodeMeta{DisplayName: "Kitchen iPad", Platform: "iOS", Caps: []string{"canvas"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The node's pending request again: 200 instead of 201.
	var again db.RequestResult
	ts.mustAPI(t, 200, "POST", base+"/requests", `{"nodeId":"kitchen-ipad"}`, &again)
	if !created.Created || again.Created || again.Request.RequestID != created.Request.RequestID {
		t.Fatalf("create %+v repeat %+v", created, again)
	}
	id := created.Request.RequestID

	pending, err := api.Pending(ctx, "default")
	if err != nil || len(pending) != 1 || pending[0].RequestID != id {
		t.Fatalf("pending %+v %v", pending, err)
	}
	st, err := api.RequestStatus(ctx, "default", id)
	if err != nil || st.Status != db.StatusPending {
		t.Fatalf("status %+v %v", st, err)
	}

	approval, err := api.Approve(ctx, "default", id)
	if err != nil || len(approval.Node.Token) != 43 || approval.Node.DisplayName != "Kitchen iPad" {
		t.Fatalf("approval %+v %v", approval, err)
	}
	_, err = api.Approve(ctx, "default", id)
	if e := refusal(t, err); e.Code != db.CodeConflict || !strings.Contains(e.Message, "was already approved at") {
		t.Fatalf("second approve: %+v", e)
	}
	st, err = api.RequestStatus(ctx, "default", id)
	if err != nil || st.Status != db.StatusApproved || st.DecidedAtMs == 0 {
		t.Fatalf("status after approve %+v %v", st, err)
	}

	// A node verifies without an operator token.
	v, err := node.Verify(ctx, "default", "kitchen-ipad", approval.Node.Token)
	if err != nil || !v.OK {
		t.Fatalf("verify %+v %v", v, err)
	}

	nodes, err := api.Nodes(ctx, "default")
	if err != nil || len(nodes.Nodes) != 1 || nodes.Nodes[0].Connected || strings.Contains(string(ts.api(t, "GET", base+"/nodes", testToken, "").body), approval.Node.Token) {
		t.Fatalf("nodes %+v %v (must carry no token)", nodes, err)
	}
	renamed, err := api.Rename(ctx, "default", "kitchen-ipad", "  Den iPad ")
	if err != nil {
		t.Fatal(err)
	}
	one, err := api.Node(ctx, "default", "kitchen-ipad")
	if err != nil || renamed.DisplayName != "Den iPad" || one.DisplayName != "Den iPad" {
		t.Fatalf("rename %+v node %+v %v", renamed, one, err)
	}
	if err := api.Remove(ctx, "default", "kitchen-ipad"); err != nil {
		t.Fatal(err)
	}
	if v, err = node.Verify(ctx, "default", "kitchen-ipad", approval.Node.Token); err != nil || v.OK {
		t.Fatalf("a removed node's token: %+v %v", v, err)
	}
	if _, err := api.Node(ctx, "default", "kitchen-ipad"); refusal(t, err).Code != db.CodeNotFound {
		t.Fatalf("removed node: %v", err)
	}

	// Reject, and the profiles list.
	second, err := api.Request(ctx, "default", client.NodeRequest{NodeID: "other"})
	if err != nil {
		t.Fatal(err)
	}
	rej, err := api.Reject(ctx, "default", second.Request.RequestID)
	if err != nil || rej.NodeID != "other" {
		t.Fatalf("reject %+v %v", rej, err)
	}
	profiles, err := api.Profiles(ctx)
	if err != nil || len(profiles) != 1 || profiles[0].Name != "default" || profiles[0].Paired != 0 || profiles[0].Pending != 0 {
		t.Fatalf("profiles %+v %v (the token opens only default)", profiles, err)
	}
}

// Ids that are not plain path segments reach the store whole: the client
// escapes each segment, and the server reads it back, "/" included.
func TestRESTOddIDsStayOneSegment(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	api := ts.client(t, testToken)
	for _, id := range []string{"..", ".", "x?y=1", "#1", "100%", "sp ace", "ü", "a%2Fb", "a/b", "/", "%2F"} {
		res, err := api.Request(ctx, "default", client.NodeRequest{NodeID: id})
		if err != nil {
			t.Fatalf("request %q: %v", id, err)
		}
		st, err := api.RequestStatus(ctx, "default", res.Request.RequestID)
		if err != nil || st.Request.NodeID != id {
			t.Fatalf("status of %q: %+v %v", id, st, err)
		}
		if _, err := api.Approve(ctx, "default", res.Request.RequestID); err != nil {
			t.Fatalf("approve %q: %v", id, err)
		}
		if r, err := api.Rename(ctx, "default", id, "renamed"); err != nil || r.NodeID != id {
			t.Errorf("rename %q: %+v %v", id, r, err)
		}
		if n, err := api.Node(ctx, "default", id); err != nil || n.NodeID != id {
			t.Errorf("node %q: %+v %v", id, n, err)
		}
		if err := api.Remove(ctx, "default", id); err != nil {
			t.Errorf("remove %q: %v", id, err)
		}
	}
	_, err := api.Pending(ctx, "ü?")
	if e := refusal(t, err); e.Code != db.CodeNotFound || e.Message != `unknown profile "ü?"; known: default, work` {
		t.Errorf("profile ü?: %+v", e)
	}
}

func TestRESTErrors(t *testing.T) {
	ts := startServer(t)
	var decided db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"decided"}`, &decided)
	ts.mustAPI(t, 200, "POST", base+"/requests/"+decided.Request.RequestID+"/reject", "", nil)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		message                         string
	}{
		{"no token", "GET", base + "/pending", "", "", 401, `missing operator token: send Authorization: Bearer <the operator token of profile "default">`},
		{"wrong token", "GET", base + "/pending", "nope", "", 401, `wrong operator token for profile "default"`},
		{"other profile's token", "GET", "/api/v1/profiles/work/pending", testToken, "", 401, `wrong operator token for profile "work"`},
		{"unknown profile", "GET", "/api/v1/profiles/nope/pending", testToken, "", 404, `unknown profile "nope"; known: default, work`},
		{"verify, unknown profile", "POST", "/api/v1/profiles/nope/verify", "", `{"nodeId":"x","token":"y"}`, 404, `unknown profile "nope"; known: default, work`},
		{"unknown request", "GET", base + "/requests/nope", testToken, "", 404, "unknown requestId"},
		{"approve unknown", "POST", base + "/requests/nope/approve", testToken, "", 404, "unknown requestId"},
		{"unknown node", "GET", base + "/nodes/nope", testToken, "", 404, "unknown nodeId"},
		{"rename unknown", "PATCH", base + "/nodes/nope", testToken, `{"displayName":"x"}`, 404, "unknown nodeId"},
		{"delete unknown", "DELETE", base + "/nodes/nope", testToken, "", 404, "unknown nodeId"},
		{"already decided", "POST", base + "/requests/" + decided.Request.RequestID + "/approve", testToken, "", 409, ""},
		{"unknown field", "POST", base + "/requests", testToken, `{"nodeId":"x","bogus":1}`, 400, "invalid node.pair.request params: at root: unexpected property 'bogus'"},
		{"duplicate key", "POST", base + "/requests", testToken, `{"nodeId":"x","nodeId":"y"}`, 400, `invalid JSON body: $["nodeId"]: duplicate key`},
		{"nested duplicate", "POST", base + "/rpc", testToken, `{"method":"health","params":{"a":1,"a":2}}`, 400, `invalid JSON body: $["params"].a: duplicate key`},
		{"trailing data", "POST", base + "/requests", testToken, `{"nodeId":"x"} {}`, 400, "invalid JSON body: $: trailing data after the JSON value"},
		{"not an object", "POST", base + "/requests", testToken, `["x"]`, 400, "invalid JSON body: $: want a JSON object, got array"},
		{"malformed", "POST", base + "/requests", testToken, `{"nodeId":`, 400, `invalid JSON body: $["nodeId"]: the JSON ends early (truncated?)`},
		{"missing nodeId", "POST", base + "/requests", testToken, `{}`, 400, "invalid node.pair.request params: must have required property 'nodeId'"},
		{"blank nodeId", "POST", base + "/requests", testToken, `{"nodeId":"  "}`, 400, "nodeId required"},
		{"wrong type", "POST", base + "/requests", testToken, `{"nodeId":5}`, 400, "invalid node.pair.request params: at /nodeId: must be string"},
		{"too long", "POST", base + "/requests", testToken, `{"nodeId":"` + strings.Repeat("n", 300) + `"}`, 400, "nodeId: at most 256 bytes (got 300)"},
		{"path id in body", "PATCH", base + "/nodes/x", testToken, `{"nodeId":"y","displayName":"z"}`, 400, "nodeId comes from the path; remove it from the body"},
		{"blank display name", "PATCH", base + "/nodes/x", testToken, `{"displayName":" "}`, 400, "displayName required"},
		{"body too large", "POST", base + "/requests", testToken, `{"nodeId":"` + strings.Repeat("n", 70<<10) + `"}`, 413, "request body larger than 65536 bytes"},
		{"rpc unknown method", "POST", base + "/rpc", testToken, `{"method":"nope"}`, 400, "unknown method: nope"},
		{"rpc bad shape", "POST", base + "/rpc", testToken, `{"method":"health","extra":1}`, 400, `want {"method": "<name>", "params": {...}} and nothing else`},
		{"bad resume id", "GET", base + "/events?after=x", testToken, "", 400, "Last-Event-ID / after must be an event id (a whole number ≥ 0)"},
		{"verify missing token", "POST", base + "/verify", "", `{"nodeId":"x"}`, 400, "invalid node.pair.verify params: must have required property 'token'"},
		{"invalid UTF-8", "POST", base + "/requests", testToken, "{\"nodeId\":\"x\xff1\"}", 400, "invalid JSON body: not valid UTF-8 (at byte 12)"},
		{"lone surrogate", "POST", base + "/requests", testToken, `{"nodeId":"x\ud800"}`, 400, `invalid JSON body: a \u escape of half a UTF-16 surrogate pair, \ud800, at byte 12: not a character`},
		{"verify invalid UTF-8", "POST", base + "/verify", "", "{\"nodeId\":\"x\xff\",\"token\":\"t\"}", 400, "invalid JSON body: not valid UTF-8 (at byte 12)"},
		{"import lone surrogate", "POST", base + "/import?dryRun=true", testToken, `{"paired":{"n":{"nodeId":"n\udc00","token":"t","createdAtMs":1,"approvedAtMs":1}}}`, 400, "the legacy files are not valid; nothing was changed:\n  paired.json: a \\u escape of half a UTF-16 surrogate pair, \\udc00, at byte 17: not a character"},
		{"approve with a body", "POST", base + "/requests/x/approve", testToken, `{"displayName":"Kitchen"}`, 400, "POST /api/v1/profiles/default/requests/x/approve takes no body; send none (or {})"},
		{"reject with a body", "POST", base + "/requests/x/reject", testToken, `{"x":1}`, 400, "POST /api/v1/profiles/default/requests/x/reject takes no body; send none (or {})"},
		{"remove with a body", "DELETE", base + "/nodes/x", testToken, `{"x":1}`, 400, "DELETE /api/v1/profiles/default/nodes/x takes no body; send none (or {})"},
		{"approve with {}", "POST", base + "/requests/x/approve", testToken, ` {} `, 404, "unknown requestId"},
		{"approve with null", "POST", base + "/requests/x/approve", testToken, `null`, 404, "unknown requestId"},
		{"unknown route", "GET", "/api/v1/nope", "", "", 404, "Not Found"},
		{"PUT on a GET route", "PUT", base + "/pending", testToken, "", 405, "Method Not Allowed"},
		{"GET on a POST route", "GET", base + "/requests/x/approve", testToken, "", 405, "Method Not Allowed"},
	}
	st := ts.byName["default"].Store
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := st.LastSeq(context.Background())
			r := ts.api(t, tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status || (tc.message != "" && r.errorMessage() != tc.message) {
				t.Fatalf("= %d %s; want %d %q", r.status, r.body, tc.status, tc.message)
			}
			var body map[string]map[string]any
			json.Unmarshal(r.body, &body)
			if body["error"]["code"] == "" || strings.Contains(string(r.body), "goroutine") {
				t.Fatalf("error body %s", r.body)
			}
			// One code for bad input, whichever layer refused it.
			if r.status == 400 && body["error"]["code"] != "invalid" {
				t.Fatalf("400 with code %q, want invalid: %s", body["error"]["code"], r.body)
			}
			if after, _ := st.LastSeq(context.Background()); after != before {
				t.Fatalf("a refused call changed state (events %d → %d)", before, after)
			}
		})
	}
}

// A form body is told that the API takes JSON (it was told "invalid
// character 'o' in literal null"); JSON sent as a form, as curl -d sends
// it, is read all the same.
func TestFormBodies(t *testing.T) {
	ts := startServer(t)
	const form = "application/x-www-form-urlencoded"
	r := ts.api(t, "POST", base+"/requests", testToken, "nodeId=n1", "Content-Type", form)
	if r.status != 400 || !strings.Contains(r.errorMessage(), "the body was sent as a form, "+form+": the API takes a JSON object") {
		t.Fatalf("form body = %d %s", r.status, r.body)
	}
	if r := ts.api(t, "POST", base+"/requests", testToken, `{"nodeId":"n1"}`, "Content-Type", form); r.status != 201 {
		t.Fatalf("JSON sent as a form = %d %s", r.status, r.body)
	}
	if r := ts.api(t, "POST", base+"/requests", testToken, `{"nodeId":`); strings.Contains(r.errorMessage(), "form") {
		t.Fatalf("a JSON body is told of forms: %s", r.body)
	}
}

// The authentication scheme is case-insensitive (RFC 9110): a REST
// trial's "bearer" was answered "missing operator token".
func TestBearerSchemeIgnoresCase(t *testing.T) {
	ts := startServer(t)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		if r := ts.api(t, "GET", base+"/pending", "", "", "Authorization", scheme+" "+testToken); r.status != 200 {
			t.Fatalf("Authorization: %s <token> = %d %s", scheme, r.status, r.body)
		}
	}
	if r := ts.api(t, "GET", base+"/pending", "", "", "Authorization", "Basic "+testToken); r.status != 401 {
		t.Fatalf("Authorization: Basic <token> = %d, want 401", r.status)
	}
}

func TestRESTExpiredIs410(t *testing.T) {
	ts := startServer(t)
	var res db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"late"}`, &res)
	ts.clock.Pin(time.Now().Add(6 * time.Minute))
	r := ts.api(t, "POST", base+"/requests/"+res.Request.RequestID+"/approve", testToken, "")
	if r.status != 410 || !strings.Contains(r.errorMessage(), "expired at") {
		t.Fatalf("approve expired = %d %s", r.status, r.body)
	}
}

func TestRESTLimiter(t *testing.T) {
	ts := startServer(t)
	for i := range 10 {
		if r := ts.api(t, "GET", base+"/pending", "wrong", ""); r.status != 401 {
			t.Fatalf("attempt %d = %d", i+1, r.status)
		}
	}
	r := ts.api(t, "GET", base+"/pending", testToken, "")
	if r.status != 429 || r.header.Get("Retry-After") != "300" {
		t.Fatalf("after 10 failures = %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	// The lockout is the operator token's: a node's verify still answers.
	if r := ts.api(t, "POST", base+"/verify", "", `{"nodeId":"a","token":"b"}`); r.status != 200 {
		t.Fatalf("verify during the operator lockout = %d", r.status)
	}
	ts.clock.Pin(time.Now().Add(5*time.Minute + time.Second))
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
}

// Finding 2 of issue #10: failures are counted per profile, credential
// class and address; a lockout refuses only its own class; unreadable
// verify bodies count; verify takes only JSON; failures are logged
// without the token.
func TestFailedAuthLimitsByProfileAndClass(t *testing.T) {
	ts := startServer(t)
	// A cross-site "simple" POST cannot reach verify.
	if r := ts.api(t, "POST", base+"/verify", "", `{"nodeId":"a","token":"b"}`, "Content-Type", "text/plain"); r.status != 415 {
		t.Fatalf("text/plain verify = %d %s", r.status, r.body)
	}
	// Ten failed verifies, half of them unreadable, lock out node tokens.
	for i := range 10 {
		body := `{"nodeId":"a","token":"guess-` + strconv.Itoa(i) + `"}`
		if i%2 == 1 {
			body = `{"nodeId":"a","nodeId":"b"}`
		}
		if r := ts.api(t, "POST", base+"/verify", "", body); r.status != 200 && r.status != 400 {
			t.Fatalf("verify %d = %d %s", i, r.status, r.body)
		}
	}
	r := ts.api(t, "POST", base+"/verify", "", `{"nodeId":"a","token":"b"}`)
	if r.status != 429 || r.header.Get("Retry-After") != "300" || !strings.Contains(r.errorMessage(), "node token") {
		t.Fatalf("verify after 10 failures = %d %s", r.status, r.body)
	}
	// Over WebSocket too, a node presenting a token is refused...
	if _, hello := ts.node(t, newDevice(), "some-node-token"); hello.OK || !strings.HasPrefix(hello.Error.Message, "unauthorized: too many failed attempts") {
		t.Fatalf("node connect during the node-token lockout: %+v", hello.Error)
	}
	// ...but the operator of the same profile, from the same address, is
	// not locked out; nor is another profile's verify.
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
	ts.operator(t, "/", testToken)
	if r := ts.api(t, "POST", "/api/v1/profiles/work/verify", "", `{"nodeId":"a","token":"b"}`); r.status != 200 {
		t.Fatalf("work verify during default's lockout = %d", r.status)
	}
	// Ten wrong operator tokens on work lock out work's operator token only.
	for range 10 {
		ts.api(t, "GET", "/api/v1/profiles/work/pending", "wrong-guess", "")
	}
	if r := ts.api(t, "GET", "/api/v1/profiles/work/pending", "work-token", ""); r.status != 429 {
		t.Fatalf("work operator after 10 failures = %d", r.status)
	}
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
	logs := ts.log.String()
	for _, want := range []string{"msg=\"authentication failed\" profile=work class=\"operator token\" remote=127.0.0.1",
		"locked out\" profile=default class=\"node token\" remote=127.0.0.1"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "wrong-guess") || strings.Contains(logs, "guess-1") {
		t.Fatal("a presented token reached the log")
	}
}

func TestTrustedProxies(t *testing.T) {
	lockOut := func(ts *testServer, from string) {
		for range 10 {
			ts.api(t, "GET", base+"/pending", "wrong", "", "X-Forwarded-For", from)
		}
	}
	// Without trusted proxies the header is ignored: everyone behind it is
	// one address (the socket's).
	plain := startServer(t)
	lockOut(plain, "203.0.113.5")
	if r := plain.api(t, "GET", base+"/pending", testToken, "", "X-Forwarded-For", "203.0.113.6"); r.status != 429 {
		t.Fatalf("untrusted X-Forwarded-For was believed: %d", r.status)
	}
	trusted := startServer(t, func(s *serverSetup) {
		s.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	lockOut(trusted, "203.0.113.5")
	if r := trusted.api(t, "GET", base+"/pending", testToken, "", "X-Forwarded-For", "203.0.113.6"); r.status != 200 {
		t.Fatalf("a trusted proxy's other client was locked out: %d", r.status)
	}
	if r := trusted.api(t, "GET", base+"/pending", testToken, "", "X-Forwarded-For", "203.0.113.5"); r.status != 429 {
		t.Fatalf("the forwarded address was not locked out: %d", r.status)
	}
}

func TestRPCRoute(t *testing.T) {
	ts := startServer(t)
	var out struct {
		OK      bool             `json:"ok"`
		Payload db.RequestResult `json:"payload"`
	}
	ts.mustAPI(t, 200, "POST", base+"/rpc", `{"method":"node.pair.request","params":{"nodeId":"via-rpc"}}`, &out)
	if !out.OK || out.Payload.Request.NodeID != "via-rpc" {
		t.Fatalf("rpc %+v", out)
	}
	// The same dispatcher as WS: the same legacy error texts.
	r := ts.api(t, "POST", base+"/rpc", testToken, `{"method":"node.pair.list","params":{"foo":1}}`)
	if r.status != 400 || r.errorMessage() != "invalid node.pair.list params: at root: unexpected property 'foo'" {
		t.Fatalf("rpc bad params = %d %s", r.status, r.body)
	}
}

// sseEvent is one Server-Sent Event as the stream carries it.
type sseEvent struct{ id, event, data string }

// openSSE follows default's event stream through the client, from the
// live end (lastID "") or after lastID, until the returned func is called.
func openSSE(t *testing.T, ts *testServer, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	after := int64(-1)
	if lastID != "" {
		after = atoi64(lastID)
	}
	stream, err := ts.client(t, testToken).Events(ctx, "default", after)
	if err != nil {
		t.Fatalf("open events: %v", err)
	}
	out := make(chan sseEvent, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer stream.Close()
		for {
			e, err := stream.Next()
			if err != nil {
				return
			}
			out <- sseEvent{id: itoa64(e.Seq), event: e.Name, data: string(e.Payload)}
		}
	}()
	return out, func() { cancel(); <-done }
}

func nextSSE(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return sseEvent{}
	}
}

func TestSSEBothWaysAndResume(t *testing.T) {
	ts := startServer(t)
	events, closeEvents := openSSE(t, ts, "")
	op := ts.operator(t, "/", testToken)

	// REST → SSE and WS.
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"from-rest"}`, nil)
	e := nextSSE(t, events)
	if e.event != db.EventRequested || !strings.Contains(e.data, "from-rest") {
		t.Fatalf("sse %+v", e)
	}
	ws := op.event(db.EventRequested, 5*time.Second)
	if ws.Seq == 0 || e.id != itoa64(ws.Seq) {
		t.Fatalf("SSE id %s and WS seq %d differ", e.id, ws.Seq)
	}
	// WS → SSE.
	op.mustCall("node.pair.request", map[string]any{"nodeId": "from-ws"}, nil)
	e = nextSSE(t, events)
	if !strings.Contains(e.data, "from-ws") {
		t.Fatalf("sse %+v", e)
	}
	lastSeen := e.id
	closeEvents()

	// While the subscriber is away, three changes.
	for _, n := range []string{"a", "b", "c"} {
		ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"`+n+`"}`, nil)
	}
	resumed, closeResumed := openSSE(t, ts, lastSeen)
	defer closeResumed()
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"d"}`, nil)
	var got []string
	for range 4 {
		got = append(got, nextSSE(t, resumed).id)
	}
	want := []string{itoa64(atoi64(lastSeen) + 1), itoa64(atoi64(lastSeen) + 2), itoa64(atoi64(lastSeen) + 3), itoa64(atoi64(lastSeen) + 4)}
	if !slices.Equal(got, want) {
		t.Fatalf("resumed ids %v, want %v (nothing missed, nothing twice)", got, want)
	}
	select {
	case e := <-resumed:
		t.Fatalf("extra event %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
}

// A REST trial: an EventSource reconnects to the URL it was opened with
// (?after= included) and sends Last-Event-ID; the query used to win, so
// every reconnect replayed the stream from the same old point.
func TestSSELastEventIDWinsOverAfter(t *testing.T) {
	ts := startServer(t)
	for _, n := range []string{"a", "b", "c"} {
		ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"`+n+`"}`, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+base+"/events?after=0", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Last-Event-ID", "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			if id != "3" {
				t.Fatalf("first event id %s; want 3, after Last-Event-ID 2 (not after ?after=0)", id)
			}
			return
		}
	}
	t.Fatalf("no event: %v", sc.Err())
}

// A resume point past the newest event (the database was restored from
// an older copy, say) gets a stream.reset event carrying the newest seq
// as its id, then every new event: skipping up to the client's id would
// have dropped them in silence.
func TestSSEResumePastTheNewestEventResets(t *testing.T) {
	ts := startServer(t)
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"before"}`, nil)
	newest := "1"
	resumed, closeResumed := openSSE(t, ts, "50")
	defer closeResumed()
	e := nextSSE(t, resumed)
	if e.event != "stream.reset" || e.id != newest || !strings.Contains(e.data, `"newestSeq":1`) || !strings.Contains(e.data, `"resumedAfter":50`) {
		t.Fatalf("first event %+v, want stream.reset with id %s", e, newest)
	}
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"after-restore"}`, nil)
	if e := nextSSE(t, resumed); e.event != db.EventRequested || e.id != "2" || !strings.Contains(e.data, "after-restore") {
		t.Fatalf("the new event after the reset: %+v", e)
	}
	if !strings.Contains(ts.log.String(), "an event stream resumed past the newest event") {
		t.Fatal("the reset is not logged")
	}
}

// A resume point older than the oldest event kept (retention pruned the
// ones after it) gets a stream.reset naming what is gone, then the kept
// events: they were skipped in silence.
func TestSSEResumeBeforeTheOldestKeptEventResets(t *testing.T) {
	ts := startServer(t)
	for _, id := range []string{"one", "two", "three"} {
		ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"`+id+`"}`, nil)
	}
	// What retention.events does to the oldest events.
	raw, err := sql.Open("sqlite", db.DSN(ts.byName["default"].Config.DatabasePath(), false))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DELETE FROM events WHERE seq <= 2`); err != nil {
		t.Fatal(err)
	}
	resumed, closeResumed := openSSE(t, ts, "1")
	defer closeResumed()
	if e := nextSSE(t, resumed); e.event != "stream.reset" || e.id != "2" || !strings.Contains(e.data, `"prunedThrough":2`) || !strings.Contains(e.data, `"resumedAfter":1`) {
		t.Fatalf("first event %+v, want stream.reset with id 2", e)
	}
	if e := nextSSE(t, resumed); e.event != db.EventRequested || e.id != "3" || !strings.Contains(e.data, `"three"`) {
		t.Fatalf("the kept event after the reset: %+v", e)
	}
	// Resuming where the kept events begin is no gap.
	fine, closeFine := openSSE(t, ts, "2")
	defer closeFine()
	if e := nextSSE(t, fine); e.event != db.EventRequested || e.id != "3" {
		t.Fatalf("resumed at the oldest kept: %+v", e)
	}
	// Every event pruned: a client that saw them all resumes quietly (it
	// was told its database was restored, and sent back to id 0); one
	// that did not is told what it lost.
	if _, err := raw.Exec(`DELETE FROM events`); err != nil {
		t.Fatal(err)
	}
	lost, closeLost := openSSE(t, ts, "1")
	defer closeLost()
	if e := nextSSE(t, lost); e.event != "stream.reset" || e.id != "3" || !strings.Contains(e.data, `"prunedThrough":3`) {
		t.Fatalf("resumed at 1 with every event pruned: %+v", e)
	}
	seenAll, closeSeenAll := openSSE(t, ts, "3")
	defer closeSeenAll()
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"four"}`, nil)
	if e := nextSSE(t, seenAll); e.event != db.EventRequested || e.id != "4" {
		t.Fatalf("resumed at the last seq with every event pruned: %+v", e)
	}
}

// Every label value is a series kept for the life of the process: a
// method a client makes up is counted as "other", not as itself (each
// made-up method of 500 KB used to cost its own series).
func TestMetricsLabelsAreBounded(t *testing.T) {
	ts := startServer(t)
	for i := range 20 {
		method := fmt.Sprintf("MADEUP%02d", i)
		if r := ts.api(t, method, "/healthz", "", ""); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("%s /healthz: %d, want 405", method, r.status)
		}
	}
	body := string(ts.api(t, "GET", "/metrics", "", "").body)
	if strings.Contains(body, "MADEUP") || !strings.Contains(body, `pairgate_http_requests_total{code="405",method="other",route="/healthz"} 20`) {
		t.Fatalf("made-up methods in the metrics:\n%s", grepLines(body, "pairgate_http_requests_total"))
	}
}

// Probes and scrapers that ask with HEAD get the GET's status and
// headers, without the body; a failing /readyz is 503 to HEAD as well.
func TestProbesAnswerHEAD(t *testing.T) {
	ts := startServer(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/ui/"} {
		r := ts.api(t, "HEAD", path, "", "")
		get := ts.api(t, "GET", path, "", "")
		if r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("Content-Type") != get.header.Get("Content-Type") {
			t.Fatalf("HEAD %s = %d %q (Content-Type %q), want 200, no body, GET's %q", path, r.status, r.body, r.header.Get("Content-Type"), get.header.Get("Content-Type"))
		}
	}
	// Operator routes check the token for HEAD as for GET.
	if r := ts.api(t, "HEAD", "/api/v1/profiles/default/nodes", testToken, ""); r.status != http.StatusOK || len(r.body) != 0 {
		t.Fatalf("HEAD …/nodes = %d %q", r.status, r.body)
	}
	if r := ts.api(t, "HEAD", "/api/v1/profiles/default/nodes", "", ""); r.status != http.StatusUnauthorized || len(r.body) != 0 {
		t.Fatalf("HEAD …/nodes without a token = %d %q", r.status, r.body)
	}
	ts.ready.Store(false) // as during shutdown
	if r := ts.api(t, "HEAD", "/readyz", "", ""); r.status != http.StatusServiceUnavailable || len(r.body) != 0 {
		t.Fatalf("HEAD /readyz while not ready = %d %q", r.status, r.body)
	}
	ts.ready.Store(true)
}

// A browser opening the server's address is sent to the operator page
// whether or not a profile is named default (without one it got a JSON
// 404); a WebSocket client there is still told to name a profile.
func TestBrowserAtTheRootWithoutADefaultProfile(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.cfg.Profiles[0].Name = "home" })
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", ts.url+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "ui/" {
		t.Fatalf("a browser at / = %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r := ts.api(t, "GET", "/", "", ""); r.status != http.StatusNotFound || !strings.Contains(r.errorMessage(), "no profile is served at /") {
		t.Fatalf("a client at / = %d %s", r.status, r.body)
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetrics(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	// Before any decision or verify, their series are there at 0 (an
	// alert on them found them absent after a restart).
	fresh := string(ts.api(t, "GET", "/metrics", "", "").body)
	for _, series := range []string{
		`pairgate_decisions_total{decision="approved",profile="default"} 0`,
		`pairgate_decisions_total{decision="removed",profile="work"} 0`,
		`pairgate_verifies_total{profile="default",result="failed"} 0`,
	} {
		if !strings.Contains(fresh, series) {
			t.Errorf("no %s at start:\n%s", series, grepLines(fresh, "pairgate_"))
		}
	}
	api := ts.client(t, testToken)
	res, err := api.Request(ctx, "default", client.NodeRequest{NodeID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Request(ctx, "default", client.NodeRequest{NodeID: "m2"}); err != nil {
		t.Fatal(err)
	}
	a, err := api.Approve(ctx, "default", res.Request.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{a.Node.Token, "wrong"} {
		if _, err := ts.client(t, "").Verify(ctx, "default", "m1", token); err != nil {
			t.Fatal(err)
		}
	}
	ts.operator(t, "/", testToken)
	deadline := time.Now().Add(5 * time.Second)
	for {
		body := string(ts.api(t, "GET", "/metrics", "", "").body)
		wantAll := []string{
			`pairgate_verifies_total{profile="default",result="ok"} 1`,
			`pairgate_verifies_total{profile="default",result="failed"} 1`,
			`pairgate_decisions_total{decision="approved",profile="default"} 1`,
			`pairgate_pending_requests{profile="default"} 1`,
			`pairgate_paired_nodes{profile="default"} 1`,
			`pairgate_ws_clients{profile="default",role="operator"} 1`,
			`pairgate_http_requests_total{code="201",method="POST",route="/api/v1/profiles/:profile/requests"} 2`,
			`pairgate_call_duration_seconds_count{method="node.pair.approve",ok="true"} 1`,
		}
		missing := ""
		for _, w := range wantAll {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s", missing)
		}
		time.Sleep(20 * time.Millisecond) // decisions are counted by the hub, asynchronously
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	ts := startServer(t)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	r := ts.api(t, "GET", "/api/v1/openapi.json", "", "")
	r.decode(t, &doc)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, rt := range ts.handler(nil).(*echo.Echo).Routes() {
		if strings.HasSuffix(rt.Path, "*") || rt.Path == "/api/v1/profiles/:profile" {
			continue // echo's own catch-alls that let group middleware see 404s
		}
		served[rt.Method+" "+openAPIPath(rt.Path)] = true
	}
	for k := range served {
		// HEAD is every GET's, as the document's description says.
		if path, ok := strings.CutPrefix(k, "GET "); ok && !served["HEAD "+path] {
			t.Errorf("GET %s is served, HEAD %s is not", path, path)
		}
		if path, ok := strings.CutPrefix(k, "HEAD "); ok && documented["GET "+path] {
			continue
		}
		if !documented[k] {
			t.Errorf("served but not in openapi.json: %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("in openapi.json but not served: %s", k)
		}
	}
	// The refusals every route can answer (an operator trial: clients
	// generated from the document did not know them): 421 for a foreign
	// Host on any route, 403 for a foreign Origin on a write, 408 for a
	// body that does not arrive.
	for path, ops := range doc.Paths {
		for method, op := range ops {
			var o struct {
				RequestBody any            `json:"requestBody"`
				Responses   map[string]any `json:"responses"`
			}
			b, _ := json.Marshal(op)
			json.Unmarshal(b, &o)
			want := []string{"421"}
			if method != "get" {
				want = append(want, "403")
			}
			if o.RequestBody != nil {
				want = append(want, "408")
			}
			for _, code := range want {
				if o.Responses[code] == nil {
					t.Errorf("%s %s does not list %s", strings.ToUpper(method), path, code)
				}
			}
		}
	}
}

// Every property the OpenAPI document lets a request carry is accepted,
// and the document declares operationIds (a REST trial: RequestInput
// offered permissions, which the server refuses, and no operation had an
// id for code generators).
func TestOpenAPIRequestInputIsWhatTheServerTakes(t *testing.T) {
	ts := startServer(t)
	var doc struct {
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				AdditionalProperties *bool                     `json:"additionalProperties"`
				Properties           map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	ts.api(t, "GET", "/api/v1/openapi.json", "", "").decode(t, &doc)
	in := doc.Components.Schemas["RequestInput"]
	if len(in.Properties) < 5 || in.AdditionalProperties == nil || *in.AdditionalProperties {
		t.Fatalf("RequestInput: %d properties, additionalProperties %v; want them listed, and no others", len(in.Properties), in.AdditionalProperties)
	}
	for name, prop := range in.Properties {
		var value any
		switch prop["type"] {
		case "string":
			value = "127.0.0.1"
		case "boolean":
			value = false
		case "array":
			value = []string{"x"}
		default:
			value = map[string]any{}
		}
		body, _ := json.Marshal(map[string]any{"nodeId": "openapi-" + name, name: value})
		if name == "nodeId" {
			body = []byte(`{"nodeId":"openapi-nodeId"}`)
		}
		if r := ts.api(t, "POST", base+"/requests", testToken, string(body)); r.status != 201 {
			t.Errorf("RequestInput property %s (%s): %d %s", name, body, r.status, r.body)
		}
	}
	ids := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s: operationId %q missing or not unique", method, path, id)
			}
			ids[id] = true
		}
	}
}

// openAPIPath writes echo's :param as OpenAPI's {param}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if name, ok := strings.CutPrefix(part, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func TestSSEEndsCleanlyOnShutdown(t *testing.T) {
	ts := startServer(t)
	events, closeEvents := openSSE(t, ts, "")
	defer closeEvents()
	start := time.Now()
	ts.stop()
	select {
	case _, ok := <-events:
		if ok {
			t.Fatal("unexpected event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event stream still open after shutdown")
	}
	if !strings.Contains(ts.log.String(), "msg=stopped") {
		t.Fatal("server did not stop")
	}
	// Shutdown did not sit out its 10 s grace period waiting for the stream.
	if waited := time.Since(start); waited > 9*time.Second {
		t.Fatalf("shutdown waited %v for the stream", waited)
	}
}

func TestRESTPendingCapIs503(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.cfg.Profiles[0].MaxPending = 1 })
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"first"}`, nil)
	r := ts.api(t, "POST", base+"/requests", testToken, `{"nodeId":"second"}`)
	if r.status != 503 || !strings.Contains(r.errorMessage(), "too many pending requests") || r.header.Get("Retry-After") != "" {
		t.Fatalf("over the cap = %d %s", r.status, r.body)
	}
	// Flow control, not a fault: a warning, not an error.
	if logs := ts.log.String(); strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, `level=WARN msg="request refused: the profile is at capacity"`) {
		t.Fatalf("the refusal's log:\n%s", logs)
	}
}

// Finding 10 of issue #10: API answers are never cached, and weak or
// shared operator tokens are named at start (without the token).
func TestNoStoreAndWeakTokenWarnings(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.cfg.Profiles[1].Token = testToken })
	var created db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"n1"}`, &created)
	for _, r := range []apiResponse{
		ts.api(t, "POST", base+"/requests/"+created.Request.RequestID+"/approve", testToken, ""),
		ts.api(t, "GET", base+"/export", testToken, ""),
		ts.api(t, "POST", base+"/rpc", testToken, `{"method":"node.list","params":{}}`),
		ts.api(t, "GET", base+"/pending", "wrong", ""),
		ts.api(t, "GET", "/api/v1/profiles", testToken, ""),
	} {
		if r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %s: Cache-Control %q", r.status, r.body, r.header.Get("Cache-Control"))
		}
	}
	p := ts.byName["default"]
	for _, tok := range []string{"", testToken[:len(testToken)-1], testToken + "x"} {
		if p.Authorized(tok) {
			t.Fatalf("%q opened the profile", tok)
		}
	}
	if !p.Authorized(testToken) {
		t.Fatal("the operator token was refused")
	}
	logs := ts.log.String()
	for _, want := range []string{`shorter than 32 characters: easy to guess; set a longer one" profile=default`,
		`same operator token: either opens both; give each its own" profile=work sameAs=default`} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, testToken) {
		t.Fatal("the operator token reached the log")
	}
}

// GET …/nodes is written entry by entry (db.NodeList.WriteJSON), as
// c.JSON would have written it whole; ?pretty still indents, and HEAD
// sends no body.
func TestNodesAnswerIsWrittenAsEncoded(t *testing.T) {
	ts := startServer(t)
	for _, id := range []string{"n<1>", "n&2"} {
		var res db.RequestResult
		ts.mustAPI(t, 201, "POST", base+"/requests", fmt.Sprintf(`{"nodeId":%q,"displayName":"Küche"}`, id), &res)
		ts.mustAPI(t, 200, "POST", base+"/requests/"+res.Request.RequestID+"/approve", "", nil)
	}
	r := ts.api(t, "GET", base+"/nodes", testToken, "")
	var l db.NodeList
	if err := json.Unmarshal(r.body, &l); err != nil || len(l.Nodes) != 2 {
		t.Fatalf("GET nodes = %d %s: %v", r.status, r.body, err)
	}
	want, _ := json.Marshal(l)
	if r.status != 200 || string(r.body) != string(want)+"\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET nodes = %d %q\n%s\nwant\n%s", r.status, r.header.Get("Content-Type"), r.body, want)
	}
	if r := ts.api(t, "GET", base+"/nodes?pretty", testToken, ""); r.status != 200 || !strings.Contains(string(r.body), "\n  \"nodes\": [") {
		t.Fatalf("GET nodes?pretty = %d %s", r.status, r.body)
	}
	if r := ts.api(t, "HEAD", base+"/nodes", testToken, ""); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("HEAD nodes = %d %q", r.status, r.body)
	}
}

// A query parameter a route does not take is refused, as a body's unknown
// field is: a misspelt ?dryrun=true imported for real, ?redacttokens=true
// exported the tokens (an outside attack).
func TestUnknownQueryParameters(t *testing.T) {
	ts := startServer(t)
	var res db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"n1"}`, &res)
	ts.mustAPI(t, 200, "POST", base+"/requests/"+res.Request.RequestID+"/approve", "", nil)
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", base + "/export?redacttokens=true", "", `unknown query parameter "redacttokens" (did you mean redactTokens?): this route takes only redactTokens (and pretty); nothing was done`},
		{"POST", base + "/import?dryrun=true", `{"paired":{"zz":{"nodeId":"zz","token":"t0123456789abcdef","createdAtMs":1,"approvedAtMs":1}}}`, `unknown query parameter "dryrun" (did you mean dryRun?)`},
		{"GET", base + "/pending?limit=5", "", `unknown query parameter "limit": this route takes no query parameter but pretty`},
		{"POST", base + "/verify?x=1", `{"nodeId":"n1","token":"t"}`, `unknown query parameter "x"`},
		{"POST", base + "/import?dryRun=", `{"paired":{"zz":{"nodeId":"zz","token":"t0123456789abcdef","createdAtMs":1,"approvedAtMs":1}}}`, "query parameter dryRun is given without a value; give one, or leave it out; nothing was done"},
		{"POST", base + "/import?dryRun=true&dryRun=false", `{"paired":{"zz":{"nodeId":"zz","token":"t0123456789abcdef","createdAtMs":1,"approvedAtMs":1}}}`, "query parameter dryRun is given 2 times"},
	} {
		r := ts.api(t, tc.method, tc.path, testToken, tc.body)
		if r.status != 400 || !strings.Contains(r.errorMessage(), tc.want) || strings.Contains(string(r.body), `"token"`) {
			t.Fatalf("%s %s = %d %s; want 400 saying %q", tc.method, tc.path, r.status, r.body, tc.want)
		}
	}
	var nodes db.NodeList
	ts.mustAPI(t, 200, "GET", base+"/nodes?pretty", "", &nodes)
	if len(nodes.Nodes) != 1 {
		t.Fatalf("a refused import paired %+v", nodes.Nodes)
	}
	// Without the operator token, the token is asked first.
	if r := ts.api(t, "GET", base+"/export?redacttokens=true", "", ""); r.status != 401 {
		t.Fatalf("unauthenticated = %d %s", r.status, r.body)
	}
}

package server

import (
	"bufio"
	"context"
	"encoding/json"
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

func TestRESTPairingFlow(t *testing.T) {
	ts := startServer(t)
	var created, again db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"kitchen-ipad","displayName":"Kitchen iPad","platform":"iOS","caps":["canvas"]}`, &created)
	ts.mustAPI(t, 200, "POST", base+"/requests", `{"nodeId":"kitchen-ipad"}`, &again)
	if !created.Created || again.Created || again.Request.RequestID != created.Request.RequestID {
		t.Fatalf("create %+v repeat %+v", created, again)
	}
	id := created.Request.RequestID

	var pending struct{ Pending []db.PendingRequest }
	ts.mustAPI(t, 200, "GET", base+"/pending", "", &pending)
	if len(pending.Pending) != 1 || pending.Pending[0].RequestID != id {
		t.Fatalf("pending %+v", pending)
	}
	var st db.RequestStatus
	ts.mustAPI(t, 200, "GET", base+"/requests/"+id, "", &st)
	if st.Status != "pending" {
		t.Fatalf("status %+v", st)
	}

	var approval db.Approval
	ts.mustAPI(t, 200, "POST", base+"/requests/"+id+"/approve", "", &approval)
	if len(approval.Node.Token) != 43 || approval.Node.DisplayName != "Kitchen iPad" {
		t.Fatalf("approval %+v", approval)
	}
	r := ts.api(t, "POST", base+"/requests/"+id+"/approve", testToken, "")
	if r.status != 409 || !strings.Contains(r.errorMessage(), "was already approved at") {
		t.Fatalf("second approve = %d %s", r.status, r.body)
	}
	ts.mustAPI(t, 200, "GET", base+"/requests/"+id, "", &st)
	if st.Status != "approved" || st.DecidedAtMs == 0 {
		t.Fatalf("status after approve %+v", st)
	}

	// A node verifies without an operator token.
	var v db.Verification
	vr := ts.api(t, "POST", base+"/verify", "", `{"nodeId":"kitchen-ipad","token":"`+approval.Node.Token+`"}`)
	vr.decode(t, &v)
	if vr.status != 200 || !v.OK {
		t.Fatalf("verify = %d %s", vr.status, vr.body)
	}

	var nodes db.NodeList
	ts.mustAPI(t, 200, "GET", base+"/nodes", "", &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].Connected || strings.Contains(string(ts.api(t, "GET", base+"/nodes", testToken, "").body), approval.Node.Token) {
		t.Fatalf("nodes %+v (must carry no token)", nodes)
	}
	var renamed db.Renamed
	ts.mustAPI(t, 200, "PATCH", base+"/nodes/kitchen-ipad", `{"displayName":"  Den iPad "}`, &renamed)
	var one db.NodeDescription
	ts.mustAPI(t, 200, "GET", base+"/nodes/kitchen-ipad", "", &one)
	if renamed.DisplayName != "Den iPad" || one.DisplayName != "Den iPad" {
		t.Fatalf("rename %+v node %+v", renamed, one)
	}
	ts.mustAPI(t, 204, "DELETE", base+"/nodes/kitchen-ipad", "", nil)
	vr = ts.api(t, "POST", base+"/verify", "", `{"nodeId":"kitchen-ipad","token":"`+approval.Node.Token+`"}`)
	vr.decode(t, &v)
	if v.OK {
		t.Fatal("a removed node's token still verifies")
	}
	if r := ts.api(t, "GET", base+"/nodes/kitchen-ipad", testToken, ""); r.status != 404 {
		t.Fatalf("removed node = %d", r.status)
	}

	// Reject, and the profiles list.
	var second db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"other"}`, &second)
	var rej db.Rejection
	ts.mustAPI(t, 200, "POST", base+"/requests/"+second.Request.RequestID+"/reject", "", &rej)
	if rej.NodeID != "other" {
		t.Fatalf("reject %+v", rej)
	}
	var profiles struct{ Profiles []profileInfo }
	ts.mustAPI(t, 200, "GET", "/api/v1/profiles", "", &profiles)
	if len(profiles.Profiles) != 1 || profiles.Profiles[0].Name != "default" || profiles.Profiles[0].Paired != 0 {
		t.Fatalf("profiles %+v (the token opens only default)", profiles)
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

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct{ id, event, data string }

func openSSE(t *testing.T, ts *testServer, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+base+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("open events: %v %v", err, resp)
	}
	out := make(chan sseEvent, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20) // events may be large (TestStuckEventStreamIsDropped)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			case line == "" && e.id != "":
				out <- e
				e = sseEvent{}
			}
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

func TestMetrics(t *testing.T) {
	ts := startServer(t)
	var res db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"m1"}`, &res)
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"m2"}`, nil)
	var a db.Approval
	ts.mustAPI(t, 200, "POST", base+"/requests/"+res.Request.RequestID+"/approve", "", &a)
	ts.api(t, "POST", base+"/verify", "", `{"nodeId":"m1","token":"`+a.Node.Token+`"}`)
	ts.api(t, "POST", base+"/verify", "", `{"nodeId":"m1","token":"wrong"}`)
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
		if !documented[k] {
			t.Errorf("served but not in openapi.json: %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("in openapi.json but not served: %s", k)
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

package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/client"
)

// seen is what a fake server received of one request.
type seen struct {
	method, path, query, auth, contentType, body string
}

// fake serves one canned answer on 127.0.0.1 and records the request.
func fake(t *testing.T, status int, header map[string]string, body string) (*client.Client, *seen) {
	t.Helper()
	got := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", "tok", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return c, got
}

func TestPathsAreEscapedPerSegment(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func(c *client.Client) error
		want seen
	}{
		{"approve", func(c *client.Client) error { _, err := c.Approve(ctx, "work", "9b5a"); return err },
			seen{method: "POST", path: "/api/v1/profiles/work/requests/9b5a/approve"}},
		{"a slash stays in its segment", func(c *client.Client) error { _, err := c.Reject(ctx, "my profile", "a/b?c"); return err },
			seen{method: "POST", path: "/api/v1/profiles/my%20profile/requests/a%2Fb%3Fc/reject"}},
		{"dots are names", func(c *client.Client) error { _, err := c.RequestStatus(ctx, "..", "."); return err },
			seen{method: "GET", path: "/api/v1/profiles/../requests/."}},
		{"percent", func(c *client.Client) error { _, err := c.Node(ctx, "default", "100%"); return err },
			seen{method: "GET", path: "/api/v1/profiles/default/nodes/100%25"}},
		{"rename sends JSON", func(c *client.Client) error { _, err := c.Rename(ctx, "default", "n1", "Den iPad"); return err },
			seen{method: "PATCH", path: "/api/v1/profiles/default/nodes/n1", contentType: "application/json", body: `{"displayName":"Den iPad"}`}},
		{"redeliver from", func(c *client.Client) error { _, err := c.Redeliver(ctx, "default", "wh_1", 42); return err },
			seen{method: "POST", path: "/api/v1/profiles/default/webhooks/wh_1/redeliver", query: "from=42"}},
		{"redeliver at the cursor", func(c *client.Client) error { _, err := c.Redeliver(ctx, "default", "wh_1", 0); return err },
			seen{method: "POST", path: "/api/v1/profiles/default/webhooks/wh_1/redeliver"}},
		{"profiles", func(c *client.Client) error { _, err := c.Profiles(ctx); return err },
			seen{method: "GET", path: "/api/v1/profiles"}},
		{"ready", func(c *client.Client) error { _, err := c.Ready(ctx); return err },
			seen{method: "GET", path: "/readyz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, got := fake(t, 200, nil, `{}`)
			if err := tc.call(c); err != nil {
				t.Fatal(err)
			}
			tc.want.auth = "Bearer tok"
			if *got != tc.want {
				t.Fatalf("sent %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestErrorsAreRebuilt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   db.Error
	}{
		{"store error", 409, nil, `{"error":{"code":"conflict","message":"request r1 was already approved at 2026-11-24T18:03:11Z"}}`,
			db.Error{Code: db.CodeConflict, Message: "request r1 was already approved at 2026-11-24T18:03:11Z"}},
		{"rate limited", 429, map[string]string{"Retry-After": "300"}, `{"error":{"code":"rate_limited","message":"too many failed attempts"}}`,
			db.Error{Code: db.CodeRateLimited, Message: "too many failed attempts", RetryAfter: 300 * time.Second}},
		{"details kept", 400, nil, `{"error":{"code":"invalid","message":"bad file","details":[{"path":"$.a"}]}}`,
			db.Error{Code: db.CodeInvalid, Message: "bad file", Details: json.RawMessage(`[{"path":"$.a"}]`)}},
		{"not pairgate's answer", 502, nil, `<html>Bad Gateway</html>`,
			db.Error{Code: db.CodeUnavailable, Message: "502 Bad Gateway"}},
		{"no body", 401, nil, ``, db.Error{Code: db.CodeUnauthorized, Message: "401 Unauthorized"}},
		{"a bad Retry-After is ignored", 503, map[string]string{"Retry-After": "soon"}, `{"error":{"code":"limit","message":"too many pending requests"}}`,
			db.Error{Code: db.CodeLimit, Message: "too many pending requests"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := fake(t, tc.status, tc.header, tc.body)
			_, err := c.Pending(ctx, "default")
			var e *db.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want a *db.Error", err, err)
			}
			if e.Code != tc.want.Code || e.Message != tc.want.Message || e.RetryAfter != tc.want.RetryAfter || !sameDetails(e.Details, tc.want.Details) {
				t.Fatalf("got %+v\nwant %+v", *e, tc.want)
			}
			if client.IsUnreachable(err) {
				t.Fatal("a server's answer counted as unreachable")
			}
		})
	}
}

func sameDetails(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestAnswersAreDecoded(t *testing.T) {
	ctx := context.Background()
	c, _ := fake(t, 200, nil, `{"pending":[{"requestId":"r1","nodeId":"n1","displayName":"Kitchen","isRepair":true,"ts":5}]}`)
	pending, err := c.Pending(ctx, "default")
	if err != nil || len(pending) != 1 || pending[0].RequestID != "r1" || pending[0].DisplayName != "Kitchen" || !pending[0].IsRepair {
		t.Fatalf("pending %+v %v", pending, err)
	}
	c, _ = fake(t, 200, nil, `{"pending":`)
	if _, err := c.Pending(ctx, "default"); err == nil || !strings.HasPrefix(err.Error(), "unexpected answer from http://127.0.0.1:") {
		t.Fatalf("a truncated answer: %v", err)
	}
	c, got := fake(t, 204, nil, "")
	if err := c.Remove(ctx, "default", "n1"); err != nil || got.method != "DELETE" {
		t.Fatalf("remove: %v %+v", err, got)
	}
	c, _ = fake(t, 503, nil, `{"ok":false,"profiles":{"default":"ok","server":"shutting down"}}`)
	r, err := c.Ready(ctx)
	if db.ErrorCode(err) != db.CodeUnavailable || r.OK || r.Profiles["server"] != "shutting down" {
		t.Fatalf("not ready: %+v %v", r, err)
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	c, err := client.New(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Profiles(context.Background())
	if err == nil || !client.IsUnreachable(err) {
		t.Fatalf("error %v, want unreachable", err)
	}
}

func TestNewRefusesWhatIsNotAServerURL(t *testing.T) {
	for _, base := range []string{"", "127.0.0.1:18789", "ws://127.0.0.1:18789", "http://", "http://h/?q=1", "http://h/#x", "http://[::1"} {
		if _, err := client.New(base, "", nil); err == nil {
			t.Errorf("New(%q) took it", base)
		}
	}
	c, err := client.New("https://gw.example/pairgate/", "", nil)
	if err != nil || c.URL() != "https://gw.example/pairgate" {
		t.Fatalf("%v %v", c, err)
	}
}

func TestEventStream(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": pairgate event stream\n\nid: 7\nevent: node.pair.requested\ndata: {\"nodeId\":\"a\"}\n\n: heartbeat\n\nid: 8\nevent: node.renamed\ndata: {\"nodeId\":\"a\",\"displayName\":\"b\"}\n\n")
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, "tok", nil)
	s, err := c.Events(context.Background(), "default", 6)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id := <-got; id != "6" {
		t.Fatalf("Last-Event-ID %q", id)
	}
	var events []db.Event
	for {
		e, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if len(events) != 2 || events[0].Seq != 7 || events[0].Name != db.EventRequested || string(events[0].Payload) != `{"nodeId":"a"}` ||
		events[1].Seq != 8 || events[1].Name != db.EventRenamed {
		t.Fatalf("events %+v", events)
	}
	// Without after, the stream starts at the live end: no Last-Event-ID.
	s2, err := c.Events(context.Background(), "default", -1)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if id := <-got; id != "" {
		t.Fatalf("live-end Last-Event-ID %q", id)
	}
	// What is not an event stream is refused.
	c, _ = fake(t, 200, nil, `{}`)
	if _, err := c.Events(context.Background(), "default", -1); err == nil || !strings.Contains(err.Error(), "an event stream") {
		t.Fatalf("a JSON answer as an event stream: %v", err)
	}
}

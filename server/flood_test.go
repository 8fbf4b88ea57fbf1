package server

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/rpc"
)

// Finding 3 of issue #10: nodes open new pending requests at most at the
// profile's requestRate, per source address and per profile; a repeated
// request of a pending node is not new; the operator is not limited.
func TestPairingRequestFloodControl(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) {
		s.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		s.cfg.Profiles[0].RequestsPerAddress = 3
		s.cfg.Profiles[0].RequestsPerProfile = 5
	})
	request := func(path, from string) frame {
		t.Helper()
		d := newDevice()
		c, err := dialWS(t, ts.ws+path, http.Header{"X-Forwarded-For": {from}})
		if err != nil {
			t.Fatal(err)
		}
		// Since connect-time pairing (#11) the connect itself opens the
		// request, and is what a flood limit refuses.
		if hello := c.call("connect", d.signedConnect(c.challenge(), "", time.Now())); !hello.OK {
			return hello
		}
		f := c.call("node.pair.request", map[string]any{"nodeId": d.id})
		if f.OK {
			// Asking again while pending is no new request.
			if again := c.call("node.pair.request", map[string]any{"nodeId": d.id}); !again.OK {
				t.Fatalf("repeated request: %+v", again.Error)
			}
		}
		return f
	}
	refused := func(f frame, what string) {
		t.Helper()
		var details struct{ RetryAfterMs int64 }
		if f.Error != nil {
			json.Unmarshal(mustJSON(f.Error.Details), &details)
		}
		if f.OK || f.Error.Code != rpc.CodeUnavailable || !strings.HasPrefix(f.Error.Message, "too many new pairing requests "+what+"; retry in ") || details.RetryAfterMs <= 0 {
			t.Fatalf("want a refusal %s, got %+v", what, f.Error)
		}
	}
	for i := range 3 {
		if f := request("/", "203.0.113.1"); !f.OK {
			t.Fatalf("request %d from one address: %+v", i, f.Error)
		}
	}
	refused(request("/", "203.0.113.1"), "from this address")
	for range 2 {
		if f := request("/", "203.0.113.2"); !f.OK {
			t.Fatalf("another address: %+v", f.Error)
		}
	}
	refused(request("/", "203.0.113.3"), "in this profile")
	// Another profile has its own rates; the operator has none.
	if f := request("/ws/work", "203.0.113.1"); !f.OK {
		t.Fatalf("work profile: %+v", f.Error)
	}
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"by-operator"}`, nil)
	var pending struct{ Pending []db.PendingRequest }
	ts.mustAPI(t, 200, "GET", base+"/pending", "", &pending)
	if len(pending.Pending) != 6 {
		t.Fatalf("%d pending, want 5 from nodes and 1 from the operator", len(pending.Pending))
	}
	// A minute refills the rates.
	ts.clock.Pin(time.Now().Add(time.Minute + time.Second))
	if f := request("/", "203.0.113.1"); !f.OK {
		t.Fatalf("after a minute: %+v", f.Error)
	}
}

// A node that connects again and again with fresh keys, refused by the
// request rate each time, makes one log line a minute (saying how many
// were left out at the next), not two a refusal.
func TestRefusedConnectsLogALineAMinute(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.cfg.Profiles[0].RequestsPerAddress = 1 })
	refused := 0
	for range 12 {
		d := newDevice()
		c, err := dialWS(t, ts.ws+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if hello := c.call("connect", d.signedConnect(c.challenge(), "", time.Now())); !hello.OK {
			refused++
		}
		c.conn.Close()
	}
	logs := ts.log.String()
	if refused != 11 || strings.Count(logs, `msg="websocket connect refused"`) != 1 ||
		!strings.Contains(logs, `reason="too many new pairing requests from this address; retry in `) ||
		strings.Contains(logs, "pairing request refused") {
		t.Fatalf("%d refused; want one line for 11 refusals:\n%s", refused, logs)
	}
	// The metric counts every one.
	metrics := string(ts.api(t, "GET", "/metrics", "", "").body)
	if want := `pairgate_ws_connects_refused_total{code="UNAVAILABLE",profile="default"} 11`; !strings.Contains(metrics, want) {
		t.Fatalf("metrics lack %s", want)
	}
}

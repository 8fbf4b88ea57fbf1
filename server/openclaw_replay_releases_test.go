package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// recordedConnect is one connection's handshake in a recording of
// testdata/openclaw-releases: the challenge nonce pairgate sent and the
// connect request the real client answered it with.
type recordedConnect struct {
	conn        int
	t           int64
	nonce       string
	request     json.RawMessage
	maxProtocol int
}

func loadConnects(t *testing.T, path string) []recordedConnect {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("recording missing: %v (testdata/openclaw-releases holds what each release sent; see its README)", err)
	}
	byConn := map[int]*recordedConnect{}
	var out []*recordedConnect
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var f wireFrame
		json.Unmarshal(r.Frame, &f)
		c := byConn[r.Conn]
		switch {
		case r.Dir == "s2c" && f.Event == "connect.challenge" && c == nil:
			c = &recordedConnect{conn: r.Conn}
			json.Unmarshal(mustField(mustField(r.Frame, "payload"), "nonce"), &c.nonce)
			byConn[r.Conn] = c
			out = append(out, c)
		case r.Dir == "c2s" && f.Method == "connect" && c != nil && c.request == nil:
			c.t, c.request = r.T, r.Frame
			var p struct{ MaxProtocol int }
			json.Unmarshal(f.Params, &p)
			c.maxProtocol = p.MaxProtocol
		}
	}
	var connects []recordedConnect
	for _, c := range out {
		if c.request != nil {
			connects = append(connects, *c)
		}
	}
	if len(connects) == 0 {
		t.Fatalf("%s holds no connect", path)
	}
	return connects
}

// answerKind names a connect's answer: "hello-ok", or the error's code.
func answerKind(f frame) string {
	if f.OK {
		var hello struct{ Type string }
		json.Unmarshal(f.Payload, &hello)
		return hello.Type
	}
	if f.Error == nil {
		return "no error"
	}
	return f.Error.Code
}

// TestReplayOpenClawReleaseConnects sends each connect a real release sent
// (recorded in testdata/openclaw-releases; no npm needed) to pairgate, over
// a challenge with the recorded nonce and a clock at the recorded time, and
// checks the kind of answer. An unpaired node host may be held in a pairing
// session (hello-ok) or told NOT_PAIRED: both are answers it pairs from;
// what must not happen is a refusal of its signature, protocol or keys.
func TestReplayOpenClawReleaseConnects(t *testing.T) {
	operator := []string{"hello-ok"}
	unpairedNode := []string{"hello-ok", "NOT_PAIRED"}
	for _, tc := range []struct {
		release, recording string
		want               []string
	}{
		{"2026.1.29", "connect-nodes-pending.jsonl", operator},
		{"2026.1.29", "connect-devices-list.jsonl", operator},
		{"2026.1.29", "connect-node-run.jsonl", unpairedNode},
		{"2026.2.17", "connect-nodes-pending.jsonl", operator},
		{"2026.2.17", "connect-devices-list.jsonl", operator},
		{"2026.2.17", "connect-node-run.jsonl", unpairedNode},
		{"2026.2.26", "connect-nodes-pending.jsonl", operator}, // v3 signatures from here on
		{"2026.2.26", "connect-devices-list.jsonl", operator},
		{"2026.2.26", "connect-node-run.jsonl", unpairedNode},
		{"2026.5.7", "connect-nodes-pending.jsonl", operator},
		{"2026.5.7", "connect-devices-list.jsonl", operator},
		{"2026.5.7", "connect-node-run.jsonl", unpairedNode},
		{"2026.7.35", "connect-nodes-pending.jsonl", operator}, // protocol 4 only from here on
		{"2026.7.35", "connect-devices-list.jsonl", operator},
		{"2026.7.35", "connect-node-run.jsonl", unpairedNode},
		{"2026.9.6", "connect-nodes-pending.jsonl", operator},
		{"2026.9.6", "connect-devices-list.jsonl", operator},
		{"2026.9.6", "connect-node-run.jsonl", unpairedNode}, // falls back to 3 on expectedProtocol 3
	} {
		t.Run(tc.release+"/"+strings.TrimSuffix(tc.recording, ".jsonl"), func(t *testing.T) {
			connects := loadConnects(t, filepath.Join(releasesDir, tc.release, tc.recording))
			var nonce string
			ts := startServer(t, func(s *serverSetup) {
				// The recorded signatures cover the recorded challenge nonces.
				s.opts.ChallengeNonce = func() string { return nonce }
			})
			for _, rc := range connects {
				nonce = rc.nonce
				ts.clock.Pin(time.UnixMilli(rc.t))
				c, err := dialWS(t, ts.ws+"/", nil)
				if err != nil {
					t.Fatal(err)
				}
				c.challenge()
				var req map[string]any
				json.Unmarshal(rc.request, &req)
				c.send(req)
				got, ok := c.next(10 * time.Second)
				if !ok {
					t.Fatalf("conn %d: closed (code %d) without an answer\nserver log:\n%s", rc.conn, c.closeCode.Load(), ts.log)
				}
				kind := answerKind(got)
				if !slices.Contains(tc.want, kind) {
					t.Errorf("conn %d: answer %s %+v, want one of %v\nconnect: %s", rc.conn, kind, got.Error, tc.want, rc.request)
				}
				// The protocol is the highest both speak: the client's
				// maximum (3 or 4).
				var hello struct{ Protocol int }
				json.Unmarshal(got.Payload, &hello)
				if kind == "hello-ok" && hello.Protocol != rc.maxProtocol {
					t.Errorf("conn %d: hello-ok protocol %d, the client asked for at most %d", rc.conn, hello.Protocol, rc.maxProtocol)
				}
				c.conn.Close()
			}
		})
	}
}

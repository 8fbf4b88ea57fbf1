package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// recorder is a loopback WebSocket proxy between a real OpenClaw client and
// pairgate. It writes every frame, both ways, and every open and close as
// JSON lines shaped like testdata/openclaw-2026.1.29/frames-*.jsonl: `t`
// (ms), `conn` (the proxy's connection number), `dir` (`c2s`, `s2c` or
// `meta`), `frame`, and for meta lines `note`, `headers`, `code`, `reason`.
type recorder struct {
	t        testing.TB
	upstream string // ws://127.0.0.1:PORT of the server
	srv      *httptest.Server

	mu     sync.Mutex
	lines  []recordLine
	conns  int
	active sync.WaitGroup // connections being proxied
}

func newRecorder(t testing.TB, upstream string) *recorder {
	r := &recorder{t: t, upstream: upstream}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() { r.srv.Close(); r.active.Wait() })
	return r
}

// hostPort is where clients connect: 127.0.0.1 and a port.
func (r *recorder) hostPort() (string, string) {
	host, port, _ := strings.Cut(strings.TrimPrefix(r.srv.URL, "http://"), ":")
	return host, port
}

// recordLine is one line of a recording, its keys in the fixtures' order.
type recordLine struct {
	T       int64          `json:"t"`
	Conn    int            `json:"conn"`
	Dir     string         `json:"dir"`
	Note    string         `json:"note,omitempty"`
	Headers map[string]any `json:"headers,omitempty"`
	Code    *int           `json:"code,omitempty"`
	Reason  *string        `json:"reason,omitempty"`
	Frame   any            `json:"frame,omitempty"`
}

func (r *recorder) add(line recordLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line.T = time.Now().UnixMilli()
	r.lines = append(r.lines, line)
}

func (r *recorder) meta(conn int, note string, code int, reason string) {
	r.add(recordLine{Conn: conn, Dir: "meta", Note: note, Code: &code, Reason: &reason})
}

var recordUpgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	r.active.Add(1)
	defer r.active.Done()
	r.mu.Lock()
	r.conns++
	conn := r.conns
	r.mu.Unlock()
	var proto any
	if p := req.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		proto = p
	}
	r.add(recordLine{Conn: conn, Dir: "meta", Note: "client-open",
		Headers: map[string]any{"host": req.Host, "sec-websocket-protocol": proto}})
	up, _, err := websocket.DefaultDialer.Dial(r.upstream+req.URL.Path, nil)
	if err != nil {
		reason := err.Error()
		r.add(recordLine{Conn: conn, Dir: "meta", Note: "upstream-error", Reason: &reason})
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	client, err := recordUpgrader.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	defer client.Close()
	done := make(chan struct{}, 2)
	go func() { r.pump(conn, "c2s", "client-close", client, up); done <- struct{}{} }()
	go func() { r.pump(conn, "s2c", "server-close", up, client); done <- struct{}{} }()
	<-done
	// One side ended: end the other, and let its pump finish.
	client.Close()
	up.Close()
	<-done
}

// pump copies frames from one side to the other, recording each, until from
// closes; its close code and reason are recorded and passed on.
func (r *recorder) pump(conn int, dir, closeNote string, from, to *websocket.Conn) {
	for {
		kind, data, err := from.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				r.meta(conn, closeNote, ce.Code, ce.Text)
				msg := websocket.FormatCloseMessage(ce.Code, ce.Text)
				if ce.Code == websocket.CloseNoStatusReceived {
					msg = websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
				}
				to.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			}
			return
		}
		var frame any = string(data)
		if json.Valid(data) {
			frame = json.RawMessage(data)
		}
		r.add(recordLine{Conn: conn, Dir: dir, Frame: frame})
		if err := to.WriteMessage(kind, data); err != nil {
			return
		}
	}
}

// write waits for the proxied connections to end, saves the recording as
// JSON lines and starts a new one.
func (r *recorder) write(path string) {
	r.t.Helper()
	r.active.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	var buf bytes.Buffer
	for _, l := range r.lines {
		b, err := json.Marshal(l)
		if err != nil {
			r.t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.lines = nil
}

// releasesDir is the repository's testdata/openclaw-releases.
const releasesDir = "../testdata/openclaw-releases"

// TestRecordOpenClawReleases records what each real release sends when it
// connects to pairgate (the operator CLI and the node host), into
// testdata/openclaw-releases/<release>/connect-*.jsonl, with what each
// command printed in commands.txt. It rewrites the repository's testdata, so
// it runs only when asked:
//
//	PAIRGATE_OPENCLAW=$PWD/.ci/openclaw PAIRGATE_OPENCLAW_RECORD=1 \
//	  go test -count=1 -run TestRecordOpenClawReleases ./server
func TestRecordOpenClawReleases(t *testing.T) {
	if os.Getenv("PAIRGATE_OPENCLAW_RECORD") == "" {
		t.Skip("records into testdata only when PAIRGATE_OPENCLAW_RECORD=1")
	}
	for _, release := range []string{"2026.1.29", "2026.2.17", "2026.2.26", "2026.5.7", "2026.7.35", "2026.9.6"} {
		t.Run(release, func(t *testing.T) {
			cli := openclaw(t, release)
			ts := startServer(t)
			rec := newRecorder(t, ts.ws)
			host, port := rec.hostPort()
			cli.url, cli.token = "ws://"+host+":"+port, testToken
			var log strings.Builder
			dir := filepath.Join(releasesDir, release)
			for _, args := range [][]string{{"nodes", "pending", "--json"}, {"devices", "list", "--json"}} {
				start := time.Now()
				out, errOut, code := cli.run(t, args...)
				fmt.Fprintf(&log, "$ openclaw %s --url ws://127.0.0.1:PORT --token %s\nexit %d after %.1f s\n--- stdout\n%s--- stderr\n%s\n",
					strings.Join(args, " "), testToken, code, time.Since(start).Seconds(), out, errOut)
				rec.write(filepath.Join(dir, "connect-"+strings.Join(args[:2], "-")+".jsonl"))
			}
			// The node host: does it connect, what does it do when refused
			// (exit, or try again), within 30 s?
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := cli.command(ctx, "node", "run", "--host", host, "--port", port, "--display-name", "Recorded Node")
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err := cmd.Run()
			ended := fmt.Sprintf("exited after %.1f s: %v", time.Since(start).Seconds(), err)
			if ctx.Err() != nil {
				ended = "still running after 30 s (stopped by the recorder)"
			}
			fmt.Fprintf(&log, "$ openclaw node run --host 127.0.0.1 --port PORT --display-name 'Recorded Node'\n%s\n--- output\n%s\n", ended, out.String())
			rec.write(filepath.Join(dir, "connect-node-run.jsonl"))
			if err := os.WriteFile(filepath.Join(dir, "commands.txt"), []byte(log.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}
}

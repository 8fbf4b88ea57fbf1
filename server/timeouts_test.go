package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/db"
)

// Finding 7 of issue #10: a request body that stops arriving is cut off
// after bodyReadTimeout, before auth (an unread body) and after it (verify
// reads its body unauthenticated). So is one refused for its foreign Host
// or Origin, outside the API's handlers: net/http reads an unread body
// before answering, and without a deadline a re-test held every
// connection of the server with such requests.
func TestSlowBodiesAreCutOff(t *testing.T) {
	ts := startServer(t)
	addr := strings.TrimPrefix(ts.url, "http://")
	heads := []string{
		"POST " + base + "/verify HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"nodeId\":",
		"POST " + base + "/requests HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\nContent-Length: 300000\r\n\r\n{\"nodeId\":",
		"POST /healthz HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 1000\r\n\r\n",
		"POST " + base + "/verify HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: http://evil.example\r\nTransfer-Encoding: chunked\r\n\r\n",
	}
	ended := make(chan string, len(heads))
	for _, head := range heads {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		go func() {
			// The server answers (408, or 401 before reading) and, the body
			// never completing, closes the connection.
			conn.SetReadDeadline(time.Now().Add(bodyReadTimeout + 15*time.Second))
			b, err := io.ReadAll(conn)
			ended <- fmt.Sprintf("%v %.40q", err, b)
		}()
	}
	var answers []string
	for range heads {
		got := <-ended
		if !strings.HasPrefix(got, "<nil> ") {
			t.Fatalf("a slow upload held its connection: %s", got)
		}
		answers = append(answers, got)
	}
	// The foreign Host and Origin were answered (not only closed).
	for _, want := range []string{"HTTP/1.1 421 ", "HTTP/1.1 403 "} {
		if !slices.ContainsFunc(answers, func(a string) bool { return strings.Contains(a, want) }) {
			t.Fatalf("no %q among the answers %q", want, answers)
		}
	}
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
}

// slowReader connects to ts with a small receive buffer; it is closed
// when the test ends.
func slowReader(t *testing.T, ts *testServer) (net.Conn, string) {
	t.Helper()
	addr := strings.TrimPrefix(ts.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(4096)
	return conn, addr
}

// stuckSubscriber opens an event stream with a small receive buffer and
// never reads it.
func stuckSubscriber(t *testing.T, ts *testServer) net.Conn {
	t.Helper()
	conn, addr := slowReader(t, ts)
	fmt.Fprintf(conn, "GET %s/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", base, addr, testToken)
	return conn
}

// bigNodes numbers bigEvents' nodes, new ones on every call.
var bigNodes atomic.Int64

// bigEvents writes n pairing requests of about 64 KiB each: more than the
// socket buffers between the server and a client that does not read.
func bigEvents(t *testing.T, ts *testServer, n int) {
	t.Helper()
	caps := make([]string, db.MaxListItems)
	for i := range caps {
		caps[i] = fmt.Sprintf("%03d", i) + strings.Repeat("c", db.MaxItemBytes-3)
	}
	st := ts.byName["default"].Store
	for range n {
		meta := db.NodeMeta{Caps: caps, Commands: caps}
		if _, err := st.Request(context.Background(), db.RequestInput{NodeID: fmt.Sprintf("big-%d", bigNodes.Add(1)), NodeMeta: meta}, db.Origin{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
}

// An event-stream client that stops reading is dropped after the write
// timeout, like a slow WS reader, and the others keep being served.
func TestStuckEventStreamIsDropped(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.WriteTimeout = 500 * time.Millisecond })
	stuckSubscriber(t, ts)
	events, closeEvents := openSSE(t, ts, "")
	defer closeEvents()
	// A subscriber that reads: it gets every event.
	all := make(chan bool, 1)
	go func() {
		requested := 0
		for e := range events {
			if e.event == db.EventRequested {
				if requested++; requested == 130 {
					break
				}
			}
		}
		all <- requested == 130
	}()
	bigEvents(t, ts, 130)
	waitLogged(t, ts, "dropping an event-stream client that does not read")
	select {
	case ok := <-all:
		if !ok {
			t.Fatal("the reading subscriber's stream ended early")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reading subscriber did not get every event")
	}
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
}

// Shutdown does not wait for an event-stream client blocked on a full
// socket.
func TestShutdownDoesNotWaitForStuckEventStream(t *testing.T) {
	ts := startServer(t)
	conn := stuckSubscriber(t, ts)
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil { // the stream has begun
		t.Fatal(err)
	}
	bigEvents(t, ts, 130)
	start := time.Now()
	ts.stop()
	// Shutdown did not sit out its 10 s grace period (nor the write timeout).
	if waited := time.Since(start); waited > ts.writeWait-time.Second {
		t.Fatalf("shutdown waited %v for a client that does not read", waited)
	}
	if resp, err := http.Get(ts.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("still serving after shutdown")
	}
}

// unreadRequests answers of ~44 KB are far more than the socket buffers
// between the server and a client that does not read hold.
const unreadRequests = 400

// unreadAnswers pipelines unreadRequests requests for the OpenAPI
// document on a connection with a small receive buffer, and reads none
// of the answers.
func unreadAnswers(t *testing.T, ts *testServer) net.Conn {
	t.Helper()
	conn, addr := slowReader(t, ts)
	req := "GET /api/v1/openapi.json HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	go io.WriteString(conn, strings.Repeat(req, unreadRequests)) // the server stops reading once it cannot answer
	return conn
}

// An outside trial's finding: a client that pipelines requests and never
// reads the answers held its connection, a goroutine and megabytes of
// socket buffer for as long as it liked (plain HTTP answers had no write
// deadline). Now the write that stops moving is given up after the write
// timeout and the connection closed; the server goes on serving.
func TestUnreadAnswersAreGivenUp(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.AnswerWriteTimeout = 300 * time.Millisecond })
	conn := unreadAnswers(t, ts)
	time.Sleep(5 * ts.answerWait) // not reading: the server's write stalls
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.Copy(io.Discard, conn)
	// Closed with our requests unread in its buffer, the server's socket
	// resets the connection instead of ending it.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the connection was still open after %d bytes: %v", got, err)
	}
	if size := int64(len(openAPI)); got >= unreadRequests*size {
		t.Fatalf("read %d bytes, every answer: the server never gave up", got)
	}
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)
}

// A re-trial: shutdown waited for an HTTP answer its client did not read
// (7.4 s, for an export). Once shutdown begins, such a write has a second.
func TestShutdownDoesNotWaitForUnreadAnswers(t *testing.T) {
	ts := startServer(t) // the answer timeout is its default, minutes
	unreadAnswers(t, ts)
	time.Sleep(500 * time.Millisecond) // the server's write is blocked
	start := time.Now()
	ts.stop()
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("shutdown waited %v for a client that does not read", waited)
	}
}

// A re-trial's finding: a client dropped for not reading left the
// server's socket in FIN-WAIT-1 holding its full send buffer (2 MB for
// over a minute for one event stream), until the kernel gave up on the
// peer. The connection is now reset on a write that timed out, which
// frees the buffer at once.
func TestDroppedClientsLeaveNoSendBuffer(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.WriteTimeout = 500 * time.Millisecond })
	conn := stuckSubscriber(t, ts)
	bigEvents(t, ts, 130)
	waitLogged(t, ts, "dropping an event-stream client that does not read")
	port := conn.RemoteAddr().(*net.TCPAddr).Port
	waitNoSendBuffer(t, port, "event stream")
	ts.mustAPI(t, 200, "GET", base+"/pending", "", nil)

	// The same for a WebSocket operator that stops reading its events.
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	slow, _, err := dialer.Dial(ts.ws+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.ReadMessage() // challenge
	slow.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": connectFrame("operator", testToken, []string{"operator.pairing"})})
	if _, hello, err := slow.ReadMessage(); err != nil || !strings.Contains(string(hello), `"ok":true`) {
		t.Fatalf("connect: %s %v", hello, err)
	}
	bigEvents(t, ts, 130)
	waitLogged(t, ts, "dropping a client that does not read its frames")
	waitNoSendBuffer(t, port, "WebSocket")
}

// waitLogged waits up to 20 s for the server to log line.
func waitLogged(t *testing.T, ts *testServer, line string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(ts.log.String(), line); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not logged in 20 s: %q\n%s", line, ts.log)
		}
	}
}

// waitNoSendBuffer waits up to 5 s for the sockets closed on the server's
// port to hold no send buffer (what: the client dropped).
func waitNoSendBuffer(t *testing.T, port int, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		held := closingSockets(t, port)
		if held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dropped %s client's connection still holds %d bytes of send buffer after it was closed", what, held)
		}
	}
}

// closingSockets sums the send queues of the sockets on local port port
// that were closed by this side and wait for their peer (FIN-WAIT-1,
// CLOSING, LAST-ACK), from /proc/net/tcp and tcp6.
func closingSockets(t *testing.T, port int) (queued int) {
	t.Helper()
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 5 {
				continue
			}
			local := f[1]
			p, err := strconv.ParseUint(local[strings.LastIndexByte(local, ':')+1:], 16, 16)
			if err != nil || int(p) != port {
				continue
			}
			switch f[3] { // TCP_FIN_WAIT1, TCP_CLOSING, TCP_LAST_ACK
			case "04", "0B", "09":
			default:
				continue
			}
			tx, _, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseUint(tx, 16, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", file, line, err)
			}
			queued += int(n)
		}
	}
	return queued
}

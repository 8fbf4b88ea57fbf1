package server

import (
	"bufio"
	"net"
	"net/http"
	"time"
)

// writeDeadlines gives every write of an HTTP answer wait to go out, as a
// WebSocket or event-stream write has: a client that sends requests and
// never reads the answers (pipelined on one connection, or one answer too
// big for the socket buffers) is dropped when a write stops moving,
// instead of holding a connection, a goroutine and megabytes of socket
// buffer for as long as it likes. A slow client that keeps reading is not
// cut off: each write has its own deadline.
//
// An upgraded connection (WebSocket) is handed over without a deadline
// (gorilla clears it) and bounds its own writes; an event stream sets
// its own deadline before each write, the same wait.
func writeDeadlines(wait time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), wait: wait}
		dw.extend() // net/http may write the answer's head itself
		next.ServeHTTP(dw, r)
		if !dw.hijacked {
			dw.extend() // the last buffered bytes, flushed after the handler
		}
	})
}

// deadlineWriter moves the connection's write deadline on before each
// write. Unwrap lets http.ResponseController (echo's Response, the event
// stream) reach the writer below for the rest.
type deadlineWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	wait     time.Duration
	hijacked bool
}

func (d *deadlineWriter) extend() { d.rc.SetWriteDeadline(time.Now().Add(d.wait)) }

// deadlineChunk is how much of one Write goes out under one deadline: a
// large answer written at once (an export of many nodes is one Write of
// its JSON) is not cut off for a client that reads it slowly but
// steadily, as long as 64 KiB leave in each wait.
const deadlineChunk = 64 << 10

func (d *deadlineWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		d.extend()
		return d.ResponseWriter.Write(b)
	}
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), deadlineChunk)]
		d.extend()
		m, err := d.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		b = b[len(chunk):]
	}
	return n, nil
}

func (d *deadlineWriter) WriteHeader(code int) {
	d.extend()
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) FlushError() error {
	d.extend()
	return d.rc.Flush()
}

func (d *deadlineWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := d.rc.Hijack()
	if err == nil {
		d.hijacked = true
	}
	return conn, rw, err
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

package server

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// answerWait is how long each 64 KiB of an HTTP answer has to go out
// (Options.AnswerWriteTimeout). Longer than a WebSocket's or an event
// stream's write timeout: a client downloading an export may read
// megabytes at once and then pause (curl --limit-rate does, for about
// 50 s over a 200 KB/s limit; a re-trial saw exports cut at 10 s).
const answerWait = 2 * time.Minute

// writeDeadlines gives every write of an HTTP answer wait to go out for
// each 64 KiB: a client that sends requests and never reads the answers
// (pipelined on one connection, or one answer too big for the socket
// buffers) is dropped when a write stops moving, instead of holding a
// connection, a goroutine and megabytes of socket buffer for as long as
// it likes. A slow client that keeps reading is not cut off. Once stop
// ends (shutdown), an answer still being written has a second more, so
// shutdown does not wait out a client that does not read.
//
// An upgraded connection (WebSocket) is handed over without a deadline
// (gorilla clears it) and bounds its own writes; an event stream sets
// its own deadline before each write.
func writeDeadlines(stop context.Context, wait time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), wait: wait, stop: stop}
		dw.extend() // net/http may write the answer's head itself
		unblock := context.AfterFunc(stop, func() {
			if !dw.hijacked.Load() && !dw.managed.Load() {
				dw.rc.SetWriteDeadline(time.Now().Add(time.Second))
			}
		})
		defer unblock()
		next.ServeHTTP(dw, r)
		if !dw.hijacked.Load() {
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
	stop     context.Context
	hijacked atomic.Bool
	// managed says the handler sets its own deadlines (an event stream,
	// through http.ResponseController): they are left as it sets them.
	managed atomic.Bool
}

// SetWriteDeadline is what http.ResponseController calls for a handler
// that bounds its own writes.
func (d *deadlineWriter) SetWriteDeadline(t time.Time) error {
	d.managed.Store(true)
	return d.rc.SetWriteDeadline(t)
}

func (d *deadlineWriter) extend() {
	if d.managed.Load() {
		return
	}
	wait := d.wait
	if d.stop.Err() != nil {
		wait = min(wait, time.Second)
	}
	d.rc.SetWriteDeadline(time.Now().Add(wait))
}

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
		d.hijacked.Store(true)
	}
	return conn, rw, err
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The write timeout bounds each 64 KiB of an answer, not the answer: a
// client that reads a large answer written at once (an export) slowly but
// steadily gets all of it, and one that stops reading is cut off.
func TestWriteDeadlinesLetSlowSteadyReadersFinish(t *testing.T) {
	const size = 8 << 20
	body := bytes.Repeat([]byte("x"), size)
	srv := httptest.NewUnstartedServer(writeDeadlines(context.Background(), time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body) // one Write, as an encoder does
	})))
	// The send buffer of a slow link: loopback's grows to megabytes, and
	// the kernel wakes a blocked writer only once half of it has drained.
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()
	get := func(pause func(read int) time.Duration) (int64, error) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.(*net.TCPConn).SetReadBuffer(16 << 10)
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var got int64
		buf := make([]byte, 32<<10)
		for i := 0; ; i++ {
			n, err := conn.Read(buf)
			got += int64(n)
			if err == io.EOF {
				return got, nil
			}
			if err != nil {
				return got, err
			}
			time.Sleep(pause(i))
		}
	}
	// At most 16 KiB (the receive buffer) every 5 ms: the 8 MiB take over
	// 2.5 s, far past one write timeout (and each 64 KiB well within one,
	// even on a busy machine).
	got, err := get(func(int) time.Duration { return 5 * time.Millisecond })
	if err != nil || got < size {
		t.Fatalf("a slow, steady reader got %d bytes of %d: %v", got, size, err)
	}
	// One that stops reading for longer than the timeout is cut off.
	got, _ = get(func(read int) time.Duration {
		if read == 0 {
			return 3 * time.Second
		}
		return 0
	})
	if got >= size {
		t.Fatalf("a reader that stalled got the whole answer (%d bytes)", got)
	}
}

type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		c.(*net.TCPConn).SetWriteBuffer(64 << 10)
	}
	return c, err
}

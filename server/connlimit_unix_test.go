//go:build linux

package server

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A connection's kernel send buffer is held small: left to itself Linux
// grows it to 4 MB, and a re-test's clients that never read their
// answers pinned 3.9 MB of kernel memory each, the host's TCP memory for
// every process.
func TestSendBuffersAreHeldSmall(t *testing.T) {
	ts := startServer(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := ts.conns.Load()
	deadline := time.Now().Add(10 * time.Second)
	var sc *servedConn
	for sc == nil {
		l.mu.Lock()
		for s := range l.all {
			if s.RemoteAddr().String() == c.LocalAddr().String() {
				sc = s
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the connection was not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	raw, err := sc.Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size int
	raw.Control(func(fd uintptr) {
		size, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	// Linux doubles what is set, for its bookkeeping.
	if err != nil || size != 2*sendBuffer {
		t.Fatalf("SO_SNDBUF %d (%v), want %d", size, err, 2*sendBuffer)
	}
}

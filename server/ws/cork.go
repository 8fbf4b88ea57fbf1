package ws

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// corkLimit is how many bytes a held connection gathers before it writes
// them out anyway.
const corkLimit = 64 << 10

// corkConn is the network connection under a session's WebSocket. While
// held, the frames written to it gather in memory and leave in one write
// when it is flushed: a burst of frames for one client (an event and its
// device twin, a fan-out that queued several) costs one system call
// instead of one each, which on a loopback or a virtual machine is most
// of a small frame's cost. Not held, writes go straight through.
//
// Every write reaches it from gorilla/websocket, which writes whole frames
// one at a time; the mutex also orders the flush against a close frame
// written from another goroutine.
type corkConn struct {
	net.Conn
	mu   sync.Mutex
	held bool
	buf  []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= corkLimit {
		if err := c.writeOut(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// hold gathers writes until flush.
func (c *corkConn) hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// flush writes what gathered and lets writes go straight through again.
func (c *corkConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	return c.writeOut()
}

func (c *corkConn) writeOut() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > corkLimit {
		c.buf = nil // a large burst's buffer is not kept for the session's life
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// Close writes what gathered (a close frame, typically) before closing.
func (c *corkConn) Close() error {
	c.mu.Lock()
	c.held = false
	c.writeOut()
	c.mu.Unlock()
	return c.Conn.Close()
}

// corkWriter hands the upgrader the hijacked connection wrapped in a
// corkConn.
type corkWriter struct {
	http.ResponseWriter
	conn *corkConn
}

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	nc, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: nc}
	return w.conn, brw, nil
}

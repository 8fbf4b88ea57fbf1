// Package wsclient is a small client of pairgate's OpenClaw gateway
// WebSocket protocol: an operator session authenticated by the profile's
// operator token, with calls pipelined over one connection. The load
// command uses it to drive a running server the way OpenClaw clients do.
package wsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Error is a method's error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

type frame struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	OK      bool            `json:"ok"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Conn is one operator session. Call is safe for concurrent use.
//
// A Conn has no reader goroutine: a caller waiting for its answer reads
// the connection itself (one at a time), handing answers to other
// callers as they come, so an answer reaches its caller without a
// hand-off between goroutines. Events are skipped unread; nothing reads
// while no call is waiting.
type Conn struct {
	ws     *websocket.Conn
	wmu    sync.Mutex
	nextID atomic.Int64
	// reading is held (capacity 1) by the caller that reads.
	reading chan struct{}

	mu      sync.Mutex
	waiting map[string]chan frame
	err     error // set when reading failed: the connection is done
}

// Dial connects to url (ws://HOST:PORT/ or …/ws/NAME) and completes the
// handshake as an operator holding token.
func Dial(ctx context.Context, url, token string) (*Conn, error) {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	var challenge frame
	if err := ws.ReadJSON(&challenge); err != nil {
		ws.Close()
		return nil, fmt.Errorf("read connect.challenge: %w", err)
	}
	connect := map[string]any{
		"type": "req", "id": "connect", "method": "connect",
		"params": map[string]any{
			"minProtocol": 3, "maxProtocol": 3,
			"client": map[string]any{"id": "cli", "version": "pairgate-load", "platform": "linux", "mode": "cli"},
			"role":   "operator",
			"scopes": []string{"operator.admin"},
			"auth":   map[string]any{"token": token},
		},
	}
	if err := ws.WriteJSON(connect); err != nil {
		ws.Close()
		return nil, err
	}
	// hello-ok answers the connect; events (a tick) may come first.
	var hello frame
	for hello.Type != "res" {
		if err := ws.ReadJSON(&hello); err != nil {
			ws.Close()
			return nil, fmt.Errorf("read hello: %w", err)
		}
	}
	if !hello.OK {
		ws.Close()
		if hello.Error != nil {
			return nil, fmt.Errorf("connect refused: %w", hello.Error)
		}
		return nil, errors.New("connect refused")
	}
	return &Conn{ws: ws, waiting: map[string]chan frame{}, reading: make(chan struct{}, 1)}, nil
}

// eventPrefix starts every event frame the server writes (Go writes a
// struct's fields in order, type first).
var eventPrefix = []byte(`{"type":"event"`)

// readOne reads frames until an answer comes, and hands it to its caller
// (ch, when it is the caller's own). The caller holds c.reading.
func (c *Conn) readOne(ctx context.Context) {
	// A read is not cut short when ctx ends: the answer it waits for is on
	// its way (the server answers every call). A second later, it is not.
	deadline, ok := ctx.Deadline()
	if ok {
		deadline = deadline.Add(time.Second)
	}
	c.ws.SetReadDeadline(deadline)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.waiting {
				close(ch)
				delete(c.waiting, id)
			}
			c.mu.Unlock()
			return
		}
		if bytes.HasPrefix(data, eventPrefix) {
			continue
		}
		var f frame
		if json.Unmarshal(data, &f) != nil || f.Type != "res" {
			continue
		}
		c.mu.Lock()
		ch := c.waiting[f.ID]
		delete(c.waiting, f.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- f
			return
		}
	}
}

// Call calls method and decodes its payload into out (when not nil).
func (c *Conn) Call(ctx context.Context, method string, params, out any) error {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	ch := make(chan frame, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.waiting[id] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.ws.WriteJSON(map[string]any{"type": "req", "id": id, "method": method, "params": params})
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	for {
		select {
		case f, ok := <-ch:
			return answer(method, f, ok, c, out)
		case c.reading <- struct{}{}:
			select {
			case f, ok := <-ch: // came while another caller read
				<-c.reading
				return answer(method, f, ok, c, out)
			default:
			}
			c.readOne(ctx)
			<-c.reading
		case <-ctx.Done():
			c.mu.Lock()
			delete(c.waiting, id)
			c.mu.Unlock()
			return ctx.Err()
		}
	}
}

func answer(method string, f frame, ok bool, c *Conn, out any) error {
	if !ok {
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("connection closed: %w", c.err)
	}
	if !f.OK {
		if f.Error != nil {
			return f.Error
		}
		return fmt.Errorf("%s failed", method)
	}
	if out != nil {
		return json.Unmarshal(f.Payload, out)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	return c.ws.Close()
}

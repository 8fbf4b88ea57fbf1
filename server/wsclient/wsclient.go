// Package wsclient is a small client of pairgate's OpenClaw gateway
// WebSocket protocol: an operator session authenticated by the profile's
// operator token, with calls pipelined over one connection. The load
// command uses it to drive a running server the way OpenClaw clients do.
package wsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

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
type Conn struct {
	ws     *websocket.Conn
	wmu    sync.Mutex
	nextID atomic.Int64

	mu      sync.Mutex
	waiting map[string]chan frame
	err     error // set when the reader stops
	done    chan struct{}
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
	c := &Conn{ws: ws, waiting: map[string]chan frame{}, done: make(chan struct{})}
	go c.read()
	return c, nil
}

// read hands each answer to its caller; events are dropped.
func (c *Conn) read() {
	defer close(c.done)
	for {
		var f frame
		if err := c.ws.ReadJSON(&f); err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.waiting {
				close(ch)
				delete(c.waiting, id)
			}
			c.mu.Unlock()
			return
		}
		if f.Type != "res" {
			continue
		}
		c.mu.Lock()
		ch := c.waiting[f.ID]
		delete(c.waiting, f.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- f
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
	select {
	case f, ok := <-ch:
		if !ok {
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
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Close closes the connection and waits for its reader.
func (c *Conn) Close() error {
	err := c.ws.Close()
	<-c.done
	return err
}

// Package ws is pairgate's WebSocket transport of the OpenClaw gateway
// protocol: the handshake (challenge, connect, device signatures), one
// reader and one writer goroutine per connection, and a hub per profile
// that keeps its sessions and fans the outbox's events out to them.
// Methods are run by the dispatcher of server/rpc. It serves plain
// net/http requests; routing is the caller's.
package ws

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/loglimit"
	"github.com/pairgate/pairgate/server/rpc"
)

// DeviceSignatureWindow is how far a device's signedAt may be from now
// by default.
const DeviceSignatureWindow = 10 * time.Minute

// Options configure a Transport; zero members take their defaults.
type Options struct {
	Log        *slog.Logger
	Dispatcher *rpc.Dispatcher
	Guard      *rpc.Guard
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Version and Host are announced in hello-ok.
	Version, Host string
	// DeviceWindow is how old a device signature may be (default
	// DeviceSignatureWindow). Only tests replaying recorded connects widen it.
	DeviceWindow time.Duration
	// Nonce makes the connect.challenge nonces (default: random UUIDs).
	Nonce func() string
	// HandshakeTimeout bounds the wait for connect (default 10s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write to a client; one that does not take
	// it is dropped (default 10s).
	WriteTimeout time.Duration
	// TickInterval is how often every session is sent the protocol's
	// tick event (default 30s; hello-ok announces 30s).
	TickInterval time.Duration
	// IdleTimeout is how long a session may send nothing, pongs
	// included, before it is closed (default 60s; pings go every 25s).
	IdleTimeout time.Duration
	// Sessions is told of each session opened (+1) and closed (-1), and
	// Decided of each resolution delivered, for metrics (nil: nothing).
	Sessions func(profile, role string, delta int)
	Decided  func(profile, decision string)
	// Refused is told of each connect refused, with the error code it
	// was answered (or TOO_MANY_CONNECTIONS, refused before the upgrade).
	Refused func(profile, code string)
	// MaxConnsPerAddress bounds the connections one source address holds
	// open, in their handshake or in a session (0: no bound).
	MaxConnsPerAddress int
	// MaxUnpaired bounds the sessions of nodes not paired, held while
	// they wait for their request, every profile together (0: no
	// bound). Such a session proves only a key made a moment ago: an
	// outside attack from 20 addresses held 18,000, and every
	// connection the server could take, the operator's too.
	MaxUnpaired int
}

// Transport serves the WebSocket protocol for a set of profile hubs.
type Transport struct {
	o            Options
	started      time.Time
	writeBuffers sync.Pool
	// refusals bounds the lines refused connects write: a client can
	// send them at will.
	refusals *loglimit.Limiter
	// seenV1 holds the v1 device signatures already used (firstUse).
	seenV1 seenSignatures
	// perAddr counts the connections each source address holds.
	addrMu  sync.Mutex
	perAddr map[string]int
	// unpaired counts the sessions of nodes not paired (MaxUnpaired).
	unpaired atomic.Int64

	mu       sync.Mutex
	hubs     []*Hub
	closing  bool
	handlers sync.WaitGroup
	// ctx is the context of sessions' calls: it outlives the HTTP handler
	// that upgraded them and ends when Close has closed them all.
	ctx    context.Context
	cancel context.CancelFunc
}

// evictable is a connection the server may close to make room while it
// waits for its client (server's servedConn): a WebSocket is, until its
// connect frame has come.
type evictable interface{ MayEvict(bool) }

// reserveUnpaired takes a place among the sessions of nodes not paired
// (MaxUnpaired), if one is free. A connect takes it before it opens a
// request, so that a node turned away leaves no request behind (a
// re-test saw requests of refused nodes listed for the operator).
func (t *Transport) reserveUnpaired() bool {
	if n := t.unpaired.Add(1); t.o.MaxUnpaired > 0 && n > int64(t.o.MaxUnpaired) {
		t.unpaired.Add(-1)
		return false
	}
	return true
}

// unpairedFull is the refusal of a node past MaxUnpaired. It is said to
// the operator too, at warning level, once a minute: a client's refusal
// is logged at info, and this one turns every new node away.
func (t *Transport) unpairedFull() error {
	t.refusals.LogFrom("", t.o.Log, slog.LevelWarn, "nodes waiting for pairing are at the server's bound: new nodes are refused until some are decided or leave (many from few addresses: see the refusals logged at info)", "max", t.o.MaxUnpaired)
	return &db.Error{Code: db.CodeUnavailable, Message: fmt.Sprintf("too many nodes are waiting for pairing on this server (%d); retry later", t.o.MaxUnpaired)}
}

// Unpaired is how many sessions of nodes not paired are open, and their
// bound (0: none).
func (t *Transport) Unpaired() (open, max int64) {
	return t.unpaired.Load(), int64(t.o.MaxUnpaired)
}

// New returns a transport.
func New(o Options) *Transport {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Nonce == nil {
		o.Nonce = db.NewUUID
	}
	if o.DeviceWindow == 0 {
		o.DeviceWindow = DeviceSignatureWindow
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = handshakeTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = writeWait
	}
	if o.TickInterval == 0 {
		o.TickInterval = tickInterval
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = pongWait
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Sessions == nil {
		o.Sessions = func(string, string, int) {}
	}
	if o.Decided == nil {
		o.Decided = func(string, string) {}
	}
	t := &Transport{o: o, started: o.Now(), refusals: loglimit.New(), perAddr: map[string]int{}}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t
}

// NewHub returns the hub of profile p; it becomes p's Live.
func (t *Transport) NewHub(p *rpc.Profile) *Hub {
	h := &Hub{
		profile: p, t: t,
		conns: map[*conn]bool{}, pairing: map[*conn]struct{}{}, live: map[string][]*conn{}, awaiting: map[string][]*conn{}, unpaired: map[string][]*conn{},
		subscribers: map[chan db.Event]struct{}{}, changed: make(chan struct{}, 1),
	}
	p.Live = h
	t.mu.Lock()
	t.hubs = append(t.hubs, h)
	t.mu.Unlock()
	return h
}

// Serve upgrades r to a WebSocket session of h's profile, from remoteIP,
// and returns once the handshake is done; the session then runs on its
// own goroutines until it ends or Close. The caller has checked the
// request's Host and Origin.
func (t *Transport) Serve(w http.ResponseWriter, r *http.Request, h *Hub, remoteIP string) {
	if !t.holdAddr(remoteIP) {
		t.refusals.LogFrom(remoteIP, t.o.Log, slog.LevelWarn, "websocket refused: too many connections from this address", "remote", remoteIP, "max", t.o.MaxConnsPerAddress)
		if t.o.Refused != nil {
			t.o.Refused(h.profile.Name, "TOO_MANY_CONNECTIONS")
		}
		// The API's error body, as the plain connections' 429 and 503.
		body, _ := json.Marshal(map[string]map[string]string{"error": {"code": string(db.CodeLimit),
			"message": fmt.Sprintf("too many connections from this address (at most %d); close some, or raise maxConnectionsPerAddress", t.o.MaxConnsPerAddress)}})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write(append(body, '\n'))
		return
	}
	held := true
	defer func() {
		if held {
			t.releaseAddr(remoteIP)
		}
	}()
	upgrader := websocket.Upgrader{
		HandshakeTimeout: t.o.HandshakeTimeout,
		// Read with the HTTP server's own buffer (size 0); write through a
		// shared pool: an idle session holds no write buffer.
		WriteBufferPool: &t.writeBuffers,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	cw := &corkWriter{ResponseWriter: w}
	ws, err := upgrader.Upgrade(cw, r, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	c := &conn{t: t, hub: h, ws: ws, cork: cw.conn, remoteIP: remoteIP, done: make(chan struct{}), writer: make(chan struct{}), kick: make(chan struct{}, 1), closeAt: -1}
	if !h.track(c) {
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeGoingAway, "server shutting down"), time.Now().Add(time.Second))
		ws.Close()
		return
	}
	held = false // c.finish lets it go
	go func() {
		defer close(c.writer)
		c.writeLoop()
	}()
	// The handshake runs here, on the HTTP handler's goroutine. A session
	// then gets a fresh goroutine for its reads, and this one returns: it
	// and what it holds (the request, a stack grown by the handshake) are
	// not kept for the session's life. Until the client's connect has
	// come, the server may close the connection to make room.
	c.evictable, _ = cw.conn.Conn.(evictable)
	if c.evictable != nil {
		c.evictable.MayEvict(true)
	}
	if !c.open(t.ctx, remoteIP) {
		c.finish()
		return
	}
	go c.readLoop(t.ctx)
}

// holdAddr counts a connection from addr, unless addr holds the most
// allowed already.
func (t *Transport) holdAddr(addr string) bool {
	t.addrMu.Lock()
	defer t.addrMu.Unlock()
	if max := t.o.MaxConnsPerAddress; max > 0 && t.perAddr[addr] >= max {
		return false
	}
	t.perAddr[addr]++
	return true
}

// releaseAddr uncounts a connection holdAddr counted.
func (t *Transport) releaseAddr(addr string) {
	t.addrMu.Lock()
	defer t.addrMu.Unlock()
	if t.perAddr[addr]--; t.perAddr[addr] <= 0 {
		delete(t.perAddr, addr)
	}
}

// Close refuses new connections, closes every one (1001) and waits for
// their goroutines, or for ctx.
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	t.closing = true
	hubs := t.hubs
	t.mu.Unlock()
	for _, h := range hubs {
		for _, c := range h.all() {
			c.close(closeGoingAway, "server shutting down")
		}
	}
	done := make(chan struct{})
	go func() {
		t.handlers.Wait()
		close(done)
	}()
	defer t.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Conns counts the connections the transport holds, open or still in
// their handshake.
func (t *Transport) Conns() int {
	t.mu.Lock()
	hubs := t.hubs
	t.mu.Unlock()
	n := 0
	for _, h := range hubs {
		n += len(h.all())
	}
	return n
}

package ws

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/loglimit"
	"github.com/pairgate/pairgate/server/rpc"
)

// Protocol limits (spec/protocol.md).
const (
	maxHandshakeFrame = 64 << 10
	maxPayload        = 512 << 10
	// maxFrameID bounds a request frame's id (OpenClaw's are UUIDs).
	maxFrameID       = 256
	maxBufferedBytes = 3 * maxPayload
	handshakeTimeout = 10 * time.Second
	tickInterval     = 30 * time.Second
	pingInterval     = 25 * time.Second
	pongWait         = 60 * time.Second
	writeWait        = 10 * time.Second
	// callHold is how long frames queued during a call wait for its
	// answer to leave with them.
	callHold = 2 * time.Millisecond
)

// errBinaryFrame refuses a binary frame: the protocol is JSON text.
var errBinaryFrame = errors.New("binary frames are not accepted; send JSON as text frames")

// Close codes.
const (
	closeNormal    = websocket.CloseNormalClosure
	closeGoingAway = websocket.CloseGoingAway
	closeProtocol  = websocket.CloseProtocolError
	closePolicy    = websocket.ClosePolicyViolation
	closeTryAgain  = websocket.CloseTryAgainLater
	closeRestart   = websocket.CloseServiceRestart
)

// conn is one WebSocket client. Its reader goroutine reads and
// dispatches; one writer goroutine owns every data write.
type conn struct {
	t             *Transport
	hub           *Hub
	ws            *websocket.Conn
	cork          *corkConn // under ws
	remoteIP      string    // counted in t.perAddr until finish
	done          chan struct{}
	closeOnce     sync.Once
	sess          rpc.Session
	connectedAtMs int64
	// closeCode is the close to send once the queue drains (a refusal).
	closeCode atomic.Pointer[closeInfo]
	// writer closes when the writer goroutine has returned.
	writer chan struct{}
	// dropping says dropSlow has begun closing the connection.
	dropping atomic.Bool
	// kick wakes the writer goroutine (capacity 1).
	kick chan struct{}

	// The outgoing frames. Whoever finds nobody writing takes the socket
	// and writes everything queued: the writer goroutine when kicked, or
	// the reader with its answer, so a call's answer (and the events its
	// own write produced) leave without a hand-off to another goroutine.
	wmu sync.Mutex
	out [][]byte
	// outBytes counts the bytes in out.
	outBytes int
	// writing says a goroutine holds the socket for data frames.
	writing bool
	// inCall says the reader is answering a frame: it writes what queues
	// meanwhile together with its answer, so that needs no kick; held
	// kicks the writer anyway should the call take longer than callHold.
	inCall bool
	held   *time.Timer
	// closeAt, when not negative, is how many frames of out leave before
	// the connection closes with closeCode (closeAfterQueue).
	closeAt int
	// heldForPairing says the session is a node waiting for the request
	// its connect opened or found, to be closed 1012 when it is approved
	// or expires; a client that calls node.pair.request itself learns the
	// outcome from the private resolution instead.
	heldForPairing atomic.Bool
	// unpaired says the session counts among Transport.unpaired.
	unpaired bool
	// evictable, when set, is told when the connection may be closed to
	// make room (while it waits for the client's connect).
	evictable evictable
	// awaits are the request ids whose resolution the session awaits in
	// its hub (guarded by the hub's mu), so that taking it out of the hub
	// visits only those: a walk over every awaited request made tearing
	// down 18,000 held sessions quadratic (the server stalled 6–8 s).
	awaits []string
}

type closeInfo struct {
	code   int
	reason string
}

// open sends the challenge and runs the handshake; on success the session
// is in its hub and hello-ok is queued.
func (c *conn) open(ctx context.Context, remoteIP string) bool {
	nonce := c.t.o.Nonce()
	c.enqueue(mustJSON(eventFrame{Type: "event", Event: "connect.challenge",
		Payload: map[string]any{"nonce": nonce, "ts": c.t.o.Now().UnixMilli()}}))
	c.ws.SetReadLimit(maxHandshakeFrame)
	c.ws.SetReadDeadline(time.Now().Add(c.t.o.HandshakeTimeout))
	helloID, hello, ok := c.handshake(ctx, nonce, remoteIP)
	if !ok {
		return false
	}
	c.hub.open(c, mustJSON(resFrame{Type: "res", ID: helloID, OK: true, Payload: hello}))
	return true
}

// readLoop reads and answers frames until the connection ends, then
// takes the session down.
func (c *conn) readLoop(ctx context.Context) {
	defer c.finish()
	// A node not paired (held for its request) proved only a key it may
	// have made a moment ago: its frames are held to the connect's size,
	// so that a thousand such sessions stalling mid-frame cannot hold
	// 512 KiB each (an outside attack: 0.8 GB from one address).
	limit := int64(maxPayload)
	if c.sess.Role == rpc.RoleNode && !c.sess.Paired {
		limit = maxHandshakeFrame
	}
	c.ws.SetReadLimit(limit)
	c.ws.SetReadDeadline(time.Now().Add(c.t.o.IdleTimeout))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(c.t.o.IdleTimeout)) })
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			if timedOut(err) {
				// Said, so that a client that stalled (or a tester)
				// learns why it was closed.
				c.close(closeNormal, "nothing received for "+c.t.o.IdleTimeout.String()+" (pings unanswered)")
			}
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(c.t.o.IdleTimeout))
		c.wmu.Lock()
		c.inCall = true
		c.wmu.Unlock()
		var answer []byte
		if kind != websocket.TextMessage {
			answer = mustJSON(resFrame{Type: "res", ID: "invalid", OK: false, Error: invalidFrame(errBinaryFrame)})
		} else {
			answer = c.handleFrame(ctx, data)
		}
		c.endCall(answer)
	}
}

// timedOut says whether a read failed for its deadline.
func timedOut(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// finish closes the connection (unless a refusal is being written, which
// the writer closes after it), waits for the writer, and takes it out of
// its hub.
func (c *conn) finish() {
	if c.closeCode.Load() == nil {
		c.close(closeNormal, "")
	}
	<-c.writer
	c.hub.remove(c)
	c.t.releaseAddr(c.remoteIP)
	if c.unpaired {
		c.t.unpaired.Add(-1)
	}
	c.t.handlers.Done()
}

// handshake reads and checks the connect request, or refuses and closes.
// It returns the request id to answer hello-ok to, the hello-ok, and
// whether the session is open.
func (c *conn) handshake(ctx context.Context, nonce, remoteIP string) (string, helloOK, bool) {
	p := c.hub.profile
	kind, data, err := c.ws.ReadMessage()
	if err != nil {
		if timedOut(err) {
			c.close(closePolicy, "handshake timeout")
		}
		return "", helloOK{}, false
	}
	if c.evictable != nil {
		c.evictable.MayEvict(false) // its connect is here: a call in progress
	}
	f, err := decodeFrame(data)
	if err != nil || kind != websocket.TextMessage {
		c.close(closePolicy, "invalid handshake: first frame must be a connect request")
		return "", helloOK{}, false
	}
	if f.Method != "connect" {
		c.refuse(remoteIP, f.ID, connectParams{}, refuse(closePolicy, db.CodeInvalid, "invalid handshake: first request must be connect"))
		return "", helloOK{}, false
	}
	cp, herr := parseConnect(f.Params)
	if herr == nil && cp.Device != nil {
		herr = verifyDevice(cp, nonce, c.t.o.Now(), c.t.o.DeviceWindow)
	}
	if herr == nil && cp.Device != nil && cp.Device.Nonce == "" {
		herr = c.t.firstUse(cp.Device, remoteIP)
	}
	var grant *helloAuth
	var reserved bool // a place among the unpaired sessions (authenticate)
	if herr == nil {
		c.sess, grant, herr = c.t.authenticate(ctx, p, cp, remoteIP, &reserved)
	}
	switch unpaired := herr == nil && c.sess.Role == rpc.RoleNode && !c.sess.Paired; {
	case unpaired && (reserved || c.t.reserveUnpaired()):
		c.unpaired = true
	case unpaired:
		herr = &handshakeError{err: c.t.unpairedFull(), closeCode: closeTryAgain}
	case reserved:
		c.t.unpaired.Add(-1) // refused after all: the place goes back
	}
	if herr != nil {
		c.refuse(remoteIP, f.ID, cp, herr)
		return "", helloOK{}, false
	}
	c.sess.Conn = c
	c.connectedAtMs = c.t.o.Now().UnixMilli()
	c.t.o.Log.Debug("websocket session opened", "profile", p.Name, "remote", remoteIP,
		"role", c.sess.Role, "client", cp.Client.ID, "version", cp.Client.Version, "protocol", cp.Protocol,
		"node", c.sess.NodeID, "paired", c.sess.Paired, "pendingRequest", c.sess.PendingRequest)
	hello := c.t.hello(cp.Protocol)
	hello.Auth = grant
	return f.ID, hello, true
}

// refuse answers a connect with its error, closes after it, and says why
// and who in the log, so an operator can see why a client cannot get in.
// The reasons are the protocol's messages, which never hold a token.
func (c *conn) refuse(remoteIP, id string, cp connectParams, e *handshakeError) {
	wire := rpc.WireError(e.err)
	// A line a minute for the same refusal of the same client: a node
	// that retries at once is refused again and again, for the same reason.
	c.t.refusals.LogFrom(remoteIP, c.t.o.Log, slog.LevelInfo, "websocket connect refused", "profile", c.hub.profile.Name, "remote", remoteIP, "reason", loglimit.Value(wire.Message),
		"client", loglimit.Value(cp.Client.ID), "version", loglimit.Value(cp.Client.Version), "mode", loglimit.Value(cp.Client.Mode), "role", loglimit.Value(cp.Role),
		"minProtocol", cp.MinProtocol, "maxProtocol", cp.MaxProtocol)
	if c.t.o.Refused != nil {
		c.t.o.Refused(c.hub.profile.Name, wire.Code)
	}
	c.enqueue(mustJSON(resFrame{Type: "res", ID: id, OK: false, Error: wire}))
	reason := e.closeReason
	if reason == "" {
		reason = wire.Message
	}
	c.closeAfterQueue(e.closeCode, reason)
}

// handleFrame answers one frame after hello.
func (c *conn) handleFrame(ctx context.Context, data []byte) []byte {
	f, err := decodeFrame(data)
	if err != nil {
		id := f.ID
		if id == "" {
			id = "invalid"
		}
		return mustJSON(resFrame{Type: "res", ID: id, OK: false, Error: invalidFrame(err)})
	}
	payload, err := c.t.o.Dispatcher.Call(ctx, &c.sess, f.Method, f.Params)
	if err != nil {
		return mustJSON(resFrame{Type: "res", ID: f.ID, OK: false, Error: rpc.WireError(err)})
	}
	return mustJSON(resFrame{Type: "res", ID: f.ID, OK: true, Payload: payload})
}

// enqueue queues a frame without ever blocking: a client with more than
// maxBufferedBytes waiting is not reading, and is dropped (1013) so one
// slow reader never holds up others. The bound is in bytes, as OpenClaw's
// own gateway bounds a socket's buffered amount: a count of frames would
// also drop readers that are merely handed a burst (the sweeper expiring
// hundreds of requests in one transaction queues an event each at once,
// before the writer has had its turn).
func (c *conn) enqueue(frame []byte) {
	select {
	case <-c.done:
		return
	default:
	}
	c.wmu.Lock()
	if c.closeAt >= 0 {
		c.wmu.Unlock()
		return // closing: nothing more leaves
	}
	if c.outBytes+len(frame) > maxBufferedBytes {
		c.wmu.Unlock()
		c.dropSlow()
		return
	}
	c.out = append(c.out, frame)
	c.outBytes += len(frame)
	kick := !c.writing && !c.inCall
	if !c.writing && c.inCall && c.held == nil {
		// The reader writes it with its answer; should the call last,
		// the writer goroutine does.
		c.held = time.AfterFunc(callHold, c.releaseHeld)
	}
	c.wmu.Unlock()
	if kick {
		c.wake()
	}
}

// releaseHeld kicks the writer for frames queued during a call that is
// taking long.
func (c *conn) releaseHeld() {
	c.wmu.Lock()
	c.held = nil
	kick := !c.writing && len(c.out) > 0
	c.wmu.Unlock()
	if kick {
		c.wake()
	}
}

func (c *conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// endCall ends the reader's call: it writes what queued during the call
// and then answer, unless the writer goroutine is writing, which then
// takes them.
func (c *conn) endCall(answer []byte) {
	c.wmu.Lock()
	c.inCall = false
	if c.held != nil {
		c.held.Stop()
		c.held = nil
	}
	if c.closeAt < 0 {
		c.out = append(c.out, answer)
		c.outBytes += len(answer)
	}
	c.writeLocked()
}

// write writes the frames queued unless another goroutine is writing,
// which then takes them. It returns false once nothing more will be
// written: a write failed, or the connection closed after the frames
// closeAfterQueue left before its close.
func (c *conn) write() bool {
	c.wmu.Lock()
	return c.writeLocked()
}

// writeLocked is write with c.wmu held; it lets go of it.
func (c *conn) writeLocked() bool {
	if c.writing {
		c.wmu.Unlock()
		return true
	}
	c.writing = true
	for {
		frames, closeAt := c.out, c.closeAt
		c.out, c.outBytes = nil, 0
		if closeAt >= 0 {
			frames = frames[:closeAt]
			c.closeAt = 0
		}
		c.wmu.Unlock()
		if len(frames) > 0 && !c.writeFrames(frames) {
			return false
		}
		if closeAt >= 0 {
			c.closeQueued()
			return false
		}
		c.wmu.Lock()
		if len(c.out) == 0 && c.closeAt < 0 {
			c.writing = false
			c.wmu.Unlock()
			return true
		}
	}
}

// writeFrames writes frames, several in one system call; on failure it
// closes the connection and returns false.
func (c *conn) writeFrames(frames [][]byte) bool {
	c.ws.SetWriteDeadline(time.Now().Add(c.t.o.WriteTimeout))
	if len(frames) > 1 {
		c.cork.hold()
	}
	var err error
	for _, f := range frames {
		if err = c.ws.WriteMessage(websocket.TextMessage, f); err != nil {
			break
		}
	}
	if len(frames) > 1 {
		err = errors.Join(err, c.cork.flush())
	}
	if err == nil {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The client's socket stayed full for the whole write timeout: it
		// does not read (its reader may be blocked here, answering it).
		c.dropSlow()
	} else {
		c.close(closeGoingAway, "")
	}
	return false
}

// dropSlow closes a client that does not read. The 1013 close frame
// reaches it only if its socket has room; either way it is gone.
//
// The close runs on a goroutine of its own: its close frame may wait up
// to a second for the full socket, and the caller may be publishing a
// commit, which every writer waits for.
func (c *conn) dropSlow() {
	select {
	case <-c.done:
		return
	default:
	}
	if !c.dropping.CompareAndSwap(false, true) {
		return
	}
	c.t.o.Log.Warn("dropping a client that does not read its frames", "code", closeTryAgain,
		"remote", c.ws.RemoteAddr().String(), "queuedBytes", c.queuedBytes())
	go c.close(closeTryAgain, "slow consumer: reconnect and re-list")
}

// queuedBytes is how many bytes wait to be written.
func (c *conn) queuedBytes() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.outBytes
}

// closeAfterQueue closes once the frames already queued are written.
func (c *conn) closeAfterQueue(code int, reason string) {
	c.closeCode.Store(&closeInfo{code: code, reason: reason})
	c.wmu.Lock()
	if c.closeAt < 0 {
		c.closeAt = len(c.out)
	}
	kick := !c.writing && !c.inCall
	c.wmu.Unlock()
	if kick {
		c.wake()
	}
}

// close sends a close frame (best effort, bounded) and tears the
// connection down; the reader and writer then return. Safe to call from
// any goroutine, any number of times.
func (c *conn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, truncateReason(reason)), time.Now().Add(time.Second))
		close(c.done)
		c.ws.Close()
	})
}

// truncateReason keeps a close reason within the 123 bytes a close frame allows.
func truncateReason(reason string) string {
	if len(reason) > 120 {
		return reason[:120]
	}
	return reason
}

// writeLoop writes what is queued when kicked (events, ticks, and
// frames queued outside a call), and pings.
func (c *conn) writeLoop() {
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
			if !c.write() {
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.t.o.WriteTimeout)); err != nil {
				c.close(closeGoingAway, "")
				return
			}
		}
	}
}

// closeQueued closes with the code closeAfterQueue left, once the frames
// before it are written.
func (c *conn) closeQueued() {
	if ci := c.closeCode.Load(); ci != nil {
		c.close(ci.code, ci.reason)
	}
}

// helloOK is the hello-ok payload. Only a node paired by its device
// key gets an auth member (its node token): operators get none, so
// OpenClaw's CLI keeps using the operator token.
type helloOK struct {
	Type     string        `json:"type"`
	Protocol int           `json:"protocol"`
	Server   helloServer   `json:"server"`
	Features helloFeatures `json:"features"`
	Snapshot helloSnapshot `json:"snapshot"`
	Auth     *helloAuth    `json:"auth,omitempty"`
	Policy   helloPolicy   `json:"policy"`
}

// helloAuth hands a node its token, as OpenClaw hands a device its
// device token; the node presents it again as auth.token or
// auth.deviceToken.
type helloAuth struct {
	DeviceToken string   `json:"deviceToken"`
	Role        string   `json:"role"`
	Scopes      []string `json:"scopes"`
	IssuedAtMs  int64    `json:"issuedAtMs"`
}

type helloServer struct {
	Version string `json:"version"`
	Host    string `json:"host"`
	ConnID  string `json:"connId"`
}

type helloFeatures struct {
	Methods []string `json:"methods"`
	Events  []string `json:"events"`
}

type helloSnapshot struct {
	Presence     []any             `json:"presence"`
	Health       map[string]any    `json:"health"`
	StateVersion helloStateVersion `json:"stateVersion"`
	UptimeMs     int64             `json:"uptimeMs"`
}

type helloStateVersion struct {
	Presence int `json:"presence"`
	Health   int `json:"health"`
}

type helloPolicy struct {
	MaxPayload       int `json:"maxPayload"`
	MaxBufferedBytes int `json:"maxBufferedBytes"`
	TickIntervalMs   int `json:"tickIntervalMs"`
}

func (t *Transport) hello(protocol int) helloOK {
	return helloOK{
		Type:     "hello-ok",
		Protocol: protocol,
		Server:   helloServer{Version: t.o.Version, Host: t.o.Host, ConnID: db.NewUUID()},
		Features: helloFeatures{Methods: rpc.Methods, Events: rpc.Events},
		Snapshot: helloSnapshot{Presence: []any{}, Health: map[string]any{}, UptimeMs: t.o.Now().Sub(t.started).Milliseconds()},
		Policy:   helloPolicy{MaxPayload: maxPayload, MaxBufferedBytes: maxBufferedBytes, TickIntervalMs: int(tickInterval.Milliseconds())},
	}
}

// invalidFrame answers a frame that is not a request.
func invalidFrame(err error) *rpc.Error {
	return &rpc.Error{Code: rpc.CodeInvalidRequest, Message: "invalid request frame: " + err.Error()}
}

// ReleaseHold: the node asks with node.pair.request itself (rpc.Conn).
func (c *conn) ReleaseHold() { c.heldForPairing.Store(false) }

// AwaitResolution registers the connection for the private resolution of
// requestID (rpc.Conn).
func (c *conn) AwaitResolution(requestID string) { c.hub.awaitResolution(c, requestID) }

package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
)

// Protocol limits (spec/protocol.md).
const (
	maxHandshakeFrame = 64 << 10
	maxPayload        = 512 << 10
	maxBufferedBytes  = 3 * maxPayload
	handshakeTimeout  = 10 * time.Second
	tickInterval      = 30 * time.Second
	pingInterval      = 25 * time.Second
	pongWait          = 60 * time.Second
	writeWait         = 10 * time.Second
	// sendQueue frames may wait for a slow reader before it is dropped.
	sendQueue = 64
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

// wsConn is one WebSocket client. Its handler goroutine reads and
// dispatches; one writer goroutine owns every data write.
type wsConn struct {
	srv           *Server
	ws            *websocket.Conn
	send          chan []byte
	done          chan struct{}
	closeOnce     sync.Once
	sess          session
	connectedAtMs int64
	// closeCode is the close to send once the queue drains (a refusal).
	closeCode atomic.Pointer[closeInfo]
	// queued counts the bytes waiting in send.
	queued atomic.Int64
	// writer closes when the writer goroutine has returned.
	writer chan struct{}
	// heldForPairing says the session is a node waiting for the request
	// its connect opened or found, to be closed 1012 when it is approved
	// or expires; a client that calls node.pair.request itself learns the
	// outcome from the private resolution instead.
	heldForPairing atomic.Bool
}

type closeInfo struct {
	code   int
	reason string
}

// handleWS upgrades a request for profile p and serves the connection
// until it closes. Unknown profiles never reach here (404 before upgrade).
func (s *Server) handleWS(c echo.Context, p *Profile) error {
	upgrader := websocket.Upgrader{
		HandshakeTimeout: s.handshake,
		// Read with the HTTP server's own buffer (size 0); write through a
		// shared pool: an idle session holds no write buffer.
		WriteBufferPool: &s.writeBuffers,
		// The listener's hostGuard has checked Origin already.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	ws, err := upgrader.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	conn := &wsConn{srv: s, ws: ws, send: make(chan []byte, sendQueue), done: make(chan struct{}), writer: make(chan struct{})}
	if !s.trackConn(conn) {
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeGoingAway, "server shutting down"), time.Now().Add(time.Second))
		ws.Close()
		return nil
	}
	go func() {
		defer close(conn.writer)
		conn.writeLoop()
	}()
	// The handshake runs here, on the HTTP handler's goroutine. A session
	// then gets a fresh goroutine for its reads, and this one returns: it
	// and what it holds (the request, echo's context, a stack grown by the
	// handshake) are not kept for the session's life.
	if !conn.open(s.connCtx, p, c.RealIP()) {
		conn.finish()
		return nil
	}
	go conn.readLoop(s.connCtx, s.hub(p))
	return nil
}

// open sends the challenge and runs the handshake; on success the session
// is in its hub and hello-ok is queued.
func (c *wsConn) open(ctx context.Context, p *Profile, remoteIP string) bool {
	nonce := c.srv.nonce()
	c.enqueue(mustJSON(eventFrame{Type: "event", Event: "connect.challenge",
		Payload: map[string]any{"nonce": nonce, "ts": c.srv.now().UnixMilli()}}))
	c.ws.SetReadLimit(maxHandshakeFrame)
	c.ws.SetReadDeadline(time.Now().Add(c.srv.handshake))
	helloID, hello, ok := c.handshake(ctx, p, nonce, remoteIP)
	if !ok {
		return false
	}
	// Registered before hello-ok goes out: whatever the client does next
	// already sees this session (connected, receiving events).
	c.srv.hub(p).add(c)
	if c.sess.pendingRequest != "" {
		c.heldForPairing.Store(true)
		c.srv.hub(p).awaitResolution(c, c.sess.pendingRequest)
	}
	c.enqueue(mustJSON(resFrame{Type: "res", ID: helloID, OK: true, Payload: hello}))
	return true
}

// readLoop reads and answers frames until the connection ends, then
// takes the session down.
func (c *wsConn) readLoop(ctx context.Context, h *hub) {
	defer c.finish()
	defer h.remove(c)
	c.ws.SetReadLimit(maxPayload)
	c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(pongWait))
		if kind != websocket.TextMessage {
			c.enqueue(mustJSON(resFrame{Type: "res", ID: "invalid", OK: false, Error: invalidRequest("invalid request frame: %s", errBinaryFrame)}))
			continue
		}
		c.handleFrame(ctx, data)
	}
}

// finish closes the connection (unless a refusal is being written, which
// the writer closes after it), waits for the writer, and untracks it.
func (c *wsConn) finish() {
	if c.closeCode.Load() == nil {
		c.close(closeNormal, "")
	}
	<-c.writer
	c.srv.untrackConn(c)
}

// handshake reads and checks the connect request, or refuses and closes.
// It returns the request id to answer hello-ok to, the hello-ok, and
// whether the session is open.
func (c *wsConn) handshake(ctx context.Context, p *Profile, nonce, remoteIP string) (string, helloOK, bool) {
	kind, data, err := c.ws.ReadMessage()
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.close(closePolicy, "handshake timeout")
		}
		return "", helloOK{}, false
	}
	f, err := decodeFrame(data)
	if err != nil || kind != websocket.TextMessage {
		c.close(closePolicy, "invalid handshake: first frame must be a connect request")
		return "", helloOK{}, false
	}
	if f.Method != "connect" {
		c.refuse(p, remoteIP, f.ID, connectParams{}, refuse(closePolicy, "invalid handshake: first request must be connect"))
		return "", helloOK{}, false
	}
	cp, herr := parseConnect(f.Params)
	if herr == nil && cp.Device != nil {
		herr = verifyDevice(cp, nonce, c.srv.now(), c.srv.deviceWindow)
	}
	var grant *helloAuth
	if herr == nil {
		c.sess, grant, herr = c.srv.authenticate(ctx, p, cp, remoteIP)
	}
	if herr != nil {
		c.refuse(p, remoteIP, f.ID, cp, herr)
		return "", helloOK{}, false
	}
	c.sess.conn = c
	c.connectedAtMs = c.srv.now().UnixMilli()
	c.srv.log.Debug("websocket session opened", "profile", p.Config.Name, "remote", remoteIP,
		"role", c.sess.role, "client", cp.Client.ID, "version", cp.Client.Version, "protocol", cp.Protocol,
		"node", c.sess.nodeID, "paired", c.sess.paired, "pendingRequest", c.sess.pendingRequest)
	hello := c.srv.hello(cp.Protocol)
	hello.Auth = grant
	return f.ID, hello, true
}

// refuse answers a connect with its error, closes after it, and says why
// and who in the log, so an operator can see why a client cannot get in.
// The reasons are the protocol's messages, which never hold a token.
func (c *wsConn) refuse(p *Profile, remoteIP, id string, cp connectParams, e *handshakeError) {
	c.srv.log.Info("websocket connect refused", "profile", p.Config.Name, "remote", remoteIP, "reason", e.err.Message,
		"client", cp.Client.ID, "version", cp.Client.Version, "mode", cp.Client.Mode, "role", cp.Role,
		"minProtocol", cp.MinProtocol, "maxProtocol", cp.MaxProtocol)
	c.enqueue(mustJSON(resFrame{Type: "res", ID: id, OK: false, Error: e.err}))
	reason := e.closeReason
	if reason == "" {
		reason = e.err.Message
	}
	c.closeAfterQueue(e.closeCode, reason)
}

// handleFrame answers one frame after hello.
func (c *wsConn) handleFrame(ctx context.Context, data []byte) {
	f, err := decodeFrame(data)
	if err != nil {
		id := f.ID
		if id == "" {
			id = "invalid"
		}
		c.enqueue(mustJSON(resFrame{Type: "res", ID: id, OK: false, Error: invalidRequest("invalid request frame: %s", err)}))
		return
	}
	payload, err := c.srv.call(ctx, &c.sess, f.Method, f.Params)
	if err != nil {
		c.srv.logCallError(f.Method, err)
		c.enqueue(mustJSON(resFrame{Type: "res", ID: f.ID, OK: false, Error: toRPCError(err)}))
		return
	}
	c.enqueue(mustJSON(resFrame{Type: "res", ID: f.ID, OK: true, Payload: payload}))
}

// enqueue hands a frame to the writer without ever blocking: a client
// with more than maxBufferedBytes (or sendQueue frames) waiting is not
// reading, and is dropped (1013) so one slow reader never holds up others.
func (c *wsConn) enqueue(frame []byte) {
	if c.queued.Add(int64(len(frame))) > maxBufferedBytes {
		c.dropSlow()
		return
	}
	select {
	case <-c.done:
	case c.send <- frame:
	default:
		c.dropSlow()
	}
}

// dropSlow closes a client that does not read. The 1013 close frame
// reaches it only if its socket has room; either way it is gone.
func (c *wsConn) dropSlow() {
	select {
	case <-c.done:
		return
	default:
	}
	c.srv.log.Warn("dropping a client that does not read its frames", "code", closeTryAgain,
		"remote", c.ws.RemoteAddr().String(), "queuedBytes", c.queued.Load())
	c.close(closeTryAgain, "slow consumer: reconnect and re-list")
}

// closeAfterQueue closes once the frames already queued are written.
func (c *wsConn) closeAfterQueue(code int, reason string) {
	c.closeCode.Store(&closeInfo{code: code, reason: reason})
	select {
	case c.send <- nil: // the writer closes when it reaches this marker
	default:
		c.close(code, reason)
	}
}

// close sends a close frame (best effort, bounded) and tears the
// connection down; the reader and writer then return. Safe to call from
// any goroutine, any number of times.
func (c *wsConn) close(code int, reason string) {
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

// writeLoop owns data writes: queued frames (ticks come queued from the
// hub) and pings.
func (c *wsConn) writeLoop() {
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		var frame []byte
		select {
		case <-c.done:
			return
		case frame = <-c.send:
			if frame == nil {
				if ci := c.closeCode.Load(); ci != nil {
					c.close(ci.code, ci.reason)
				}
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.srv.writeWait)); err != nil {
				c.close(closeGoingAway, "")
				return
			}
			continue
		}
		c.ws.SetWriteDeadline(time.Now().Add(c.srv.writeWait))
		err := c.ws.WriteMessage(websocket.TextMessage, frame)
		c.queued.Add(-int64(len(frame)))
		if err != nil {
			c.close(closeGoingAway, "")
			return
		}
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

func (s *Server) hello(protocol int) helloOK {
	return helloOK{
		Type:     "hello-ok",
		Protocol: protocol,
		Server:   helloServer{Version: s.version, Host: s.host, ConnID: db.NewUUID()},
		Features: helloFeatures{Methods: methodNames, Events: eventNames},
		Snapshot: helloSnapshot{Presence: []any{}, Health: map[string]any{}, UptimeMs: s.now().Sub(s.started).Milliseconds()},
		Policy:   helloPolicy{MaxPayload: maxPayload, MaxBufferedBytes: maxBufferedBytes, TickIntervalMs: int(tickInterval.Milliseconds())},
	}
}

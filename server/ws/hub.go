package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pairgate/pairgate/db"
)

// outboxPoll is how often a hub looks for events written by other
// processes (the CLI's offline commands, an import); its own writes wake
// it at once.
const outboxPoll = 250 * time.Millisecond

// hub is one profile's live state: its WS connections, the paired nodes
// that are connected, and the fan-out of outbox events to them.
type hub struct {
	profile *Profile
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	conns map[*wsConn]struct{}
	// live holds the paired sessions of each connected node.
	live map[string][]*wsConn
	// awaiting maps a request id to the pairing sessions waiting for it.
	awaiting map[string][]*wsConn
	// subscribers get every event (SSE).
	subscribers map[chan db.Event]struct{}
	// changed is signalled (coalesced) after each delivered event, for the
	// legacy-file mirror.
	changed chan struct{}
}

func newHub(p *Profile, log *slog.Logger, m *metrics) *hub {
	return &hub{
		profile: p, log: log, metrics: m,
		conns: map[*wsConn]struct{}{}, live: map[string][]*wsConn{}, awaiting: map[string][]*wsConn{},
		subscribers: map[chan db.Event]struct{}{}, changed: make(chan struct{}, 1),
	}
}

func (s *Server) hub(p *Profile) *hub { return s.hubs[p.Config.Name] }

func (h *hub) add(c *wsConn) {
	h.metrics.wsClients.WithLabelValues(h.profile.Config.Name, c.sess.role).Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns[c] = struct{}{}
	if c.sess.role == roleNode && c.sess.paired {
		h.live[c.sess.nodeID] = append(h.live[c.sess.nodeID], c)
	}
}

func (h *hub) remove(c *wsConn) {
	h.metrics.wsClients.WithLabelValues(h.profile.Config.Name, c.sess.role).Dec()
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	if c.sess.role == roleNode {
		h.live[c.sess.nodeID] = slices.DeleteFunc(h.live[c.sess.nodeID], func(x *wsConn) bool { return x == c })
		if len(h.live[c.sess.nodeID]) == 0 {
			delete(h.live, c.sess.nodeID)
		}
		for id, waiting := range h.awaiting {
			if waiting = slices.DeleteFunc(waiting, func(x *wsConn) bool { return x == c }); len(waiting) == 0 {
				delete(h.awaiting, id)
			} else {
				h.awaiting[id] = waiting
			}
		}
	}
}

// awaitResolution makes a node's pairing session the recipient of the
// private resolution of its request.
func (h *hub) awaitResolution(c *wsConn, requestID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(h.awaiting[requestID], c) {
		h.awaiting[requestID] = append(h.awaiting[requestID], c)
	}
}

// dropNode closes the live sessions of a node whose pairing was removed.
func (h *hub) dropNode(nodeID string) {
	h.mu.Lock()
	sessions := slices.Clone(h.live[nodeID])
	h.mu.Unlock()
	for _, c := range sessions {
		c.close(closePolicy, "pairing removed")
	}
}

// subscribe registers a channel that receives every event of the profile
// (for SSE); the returned function unregisters it.
func (h *hub) subscribe(ch chan db.Event) func() {
	h.mu.Lock()
	h.subscribers[ch] = struct{}{}
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.subscribers, ch)
		h.mu.Unlock()
	}
}

// run tails the outbox after seq from (its end when the server started,
// read before any subscriber could read the outbox itself: what a
// subscriber's own read misses, the hub delivers) until ctx is done,
// delivering each event once, in seq order.
func (h *hub) run(ctx context.Context, from int64) {
	st := h.profile.Store
	last := from
	poll := time.NewTicker(outboxPoll)
	defer poll.Stop()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.tick()
			continue
		case <-st.Committed():
		case <-poll.C:
		}
		for {
			events, err := st.EventsAfter(ctx, last, 512)
			if err != nil {
				if ctx.Err() == nil {
					h.log.Error("read outbox", "profile", h.profile.Config.Name, "err", err)
				}
				break
			}
			for _, e := range events {
				h.deliver(ctx, e)
				last = e.Seq
			}
			if len(events) < 512 {
				break
			}
		}
	}
}

// deliver sends one event: pairing events to operators holding
// operator.pairing, a resolution privately to the node waiting for it
// (with its token on approval), and everything to subscribers.
func (h *hub) deliver(ctx context.Context, e db.Event) {
	h.mu.Lock()
	var operators []*wsConn
	if e.Name == db.EventRequested || e.Name == db.EventResolved {
		for c := range h.conns {
			if c.sess.role == roleOperator && c.sess.hasScope(scopePairing) {
				operators = append(operators, c)
			}
		}
	}
	var waiting []*wsConn
	var res db.Resolution
	if e.Name == db.EventResolved && json.Unmarshal(e.Payload, &res) == nil {
		h.metrics.decisions.WithLabelValues(h.profile.Config.Name, res.Decision).Inc()
		if res.RequestID != "" {
			waiting = h.awaiting[res.RequestID]
			delete(h.awaiting, res.RequestID)
		}
	}
	var sessions []*wsConn
	if e.Name == db.EventImported && importChangedPairings(e.Payload) {
		for _, cs := range h.live {
			sessions = append(sessions, cs...)
		}
	}
	subs := make([]chan db.Event, 0, len(h.subscribers))
	for ch := range h.subscribers {
		subs = append(subs, ch)
	}
	h.mu.Unlock()

	if len(operators) > 0 {
		frame := mustJSON(eventFrame{Type: "event", Event: e.Name, Payload: e.Payload, Seq: e.Seq})
		// The device twin goes without seq: the outbox numbers one event.
		var twin []byte
		if dev := h.deviceEvent(ctx, e); dev != nil {
			twin = mustJSON(eventFrame{Type: "event", Event: deviceTwin[e.Name], Payload: dev})
		}
		for _, c := range operators {
			c.enqueue(frame)
			if twin != nil {
				c.enqueue(twin)
			}
		}
	}
	if len(waiting) > 0 {
		h.notifyNode(ctx, e, res, waiting)
	}
	h.dropStale(ctx, sessions)
	for _, ch := range subs {
		select {
		case ch <- e:
		default: // a subscriber that cannot keep up resumes from its last id
		}
	}
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// importChangedPairings says whether an import's report (the payload of
// its event) counts removed or replaced pairings.
func importChangedPairings(payload json.RawMessage) bool {
	var rep db.ImportReport
	return json.Unmarshal(payload, &rep) == nil && rep.PairedRemoved+rep.PairedReplaced > 0
}

// dropStale closes the sessions whose pairing is gone or whose token is
// no longer the one they presented: an import (REST, or the CLI's from
// another process) changes pairings behind the live sessions' backs.
func (h *hub) dropStale(ctx context.Context, sessions []*wsConn) {
	for _, c := range sessions {
		token, err := h.profile.Store.Token(ctx, c.sess.nodeID)
		switch {
		case db.ErrorCode(err) == db.CodeNotFound:
			c.close(closePolicy, "pairing removed")
		case err != nil:
			h.log.Error("cannot check a live session after an import", "profile", h.profile.Config.Name, "node", c.sess.nodeID, "err", err)
		case c.sess.tokenDigest != nil:
			if digest := sha256.Sum256([]byte(token)); subtle.ConstantTimeCompare(digest[:], c.sess.tokenDigest) != 1 {
				c.close(closePolicy, "pairing token replaced")
			}
		}
	}
}

// privateResolution is the event a node receives about its own request.
type privateResolution struct {
	db.Resolution
	Token string `json:"token,omitempty"`
}

func (h *hub) notifyNode(ctx context.Context, e db.Event, res db.Resolution, waiting []*wsConn) {
	p := privateResolution{Resolution: res}
	if res.Decision == db.DecisionApproved {
		token, err := h.profile.Store.Token(ctx, res.NodeID)
		if err != nil {
			h.log.Error("cannot hand the new token to its node", "profile", h.profile.Config.Name, "node", res.NodeID, "err", err)
		}
		p.Token = token
	}
	frame := mustJSON(eventFrame{Type: "event", Event: e.Name, Payload: p, Seq: e.Seq})
	for _, c := range waiting {
		c.enqueue(frame)
		if !c.heldForPairing.Load() {
			continue
		}
		// OpenClaw's node hosts ignore the event but reconnect after 1012:
		// once approved, the reconnect is handed the token in hello-ok;
		// once expired, it asks again.
		switch res.Decision {
		case db.DecisionApproved:
			c.closeAfterQueue(closeRestart, "pairing approved: reconnect")
		case db.DecisionExpired:
			c.closeAfterQueue(closeRestart, "pairing request expired: reconnect to ask again")
		}
	}
}

// tick sends every session of the hub the protocol's tick event.
func (h *hub) tick() {
	frame := mustJSON(eventFrame{Type: "event", Event: "tick", Payload: map[string]int64{"ts": time.Now().UnixMilli()}})
	h.mu.Lock()
	conns := make([]*wsConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.enqueue(frame)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own frame types reach here
	}
	return b
}

// connectedNodes counts the paired nodes with a live session.
func (h *hub) connectedNodes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.live)
}

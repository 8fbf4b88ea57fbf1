package ws

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/rpc"
)

// outboxPoll is how often a hub looks for events written by other
// processes (the CLI's offline commands, an import); its own writes wake
// it at once.
const outboxPoll = 250 * time.Millisecond

// Hub is one profile's live state: its WebSocket connections (the one
// registry of them), the paired nodes that are connected, and the fan-out
// of outbox events to them and to subscribers.
type Hub struct {
	profile *rpc.Profile
	t       *Transport

	mu sync.Mutex
	// conns holds every connection of the profile from its upgrade on;
	// true once its handshake opened a session.
	conns map[*conn]bool
	// pairing holds the operator sessions that get pairing events
	// (operator.pairing): a commit's events go to them without a walk
	// over every connection (most are nodes).
	pairing map[*conn]struct{}
	// live holds the paired sessions of each connected node.
	live map[string][]*conn
	// awaiting maps a request id to the pairing sessions waiting for it.
	awaiting map[string][]*conn
	// unpaired holds each node's sessions that are not paired, oldest
	// first (at most maxUnpairedPerNode).
	unpaired map[string][]*conn
	// subscribers get every event (SSE, webhooks).
	subscribers map[chan db.Event]struct{}
	// changed is signalled (coalesced) after each delivered event, for the
	// legacy-file mirror.
	changed chan struct{}

	// deliverMu orders deliveries (a commit's events, the outbox poll);
	// last is the seq of the last event delivered.
	deliverMu sync.Mutex
	last      int64
}

// track registers a connection just upgraded, unless the transport is
// closing.
func (h *Hub) track(c *conn) bool {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	if h.t.closing {
		return false
	}
	h.t.handlers.Add(1)
	h.mu.Lock()
	h.conns[c] = false
	h.mu.Unlock()
	return true
}

// open makes a connection's session part of the profile's live state.
//
// hello (hello-ok) is queued under the hub's lock, as the session opens:
// whatever the client does next already sees this session (connected,
// receiving events), and no event can be queued before its hello-ok.
func (h *Hub) open(c *conn, hello []byte) {
	h.t.o.Sessions(h.profile.Name, c.sess.Role, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	c.enqueue(hello)
	h.conns[c] = true
	if c.sess.Role == rpc.RoleOperator && c.sess.HasScope(rpc.ScopePairing) {
		h.pairing[c] = struct{}{}
	}
	if c.sess.Role == rpc.RoleNode && c.sess.Paired {
		h.live[c.sess.NodeID] = append(h.live[c.sess.NodeID], c)
	}
	if c.sess.PendingRequest != "" {
		// Held until its request is decided (notifyNode).
		c.heldForPairing.Store(true)
		h.await(c, c.sess.PendingRequest)
	}
	if c.unpaired {
		// One device's sessions take its oldest's place past the bound: a
		// re-test filled every unpaired place of the server (4,096) from
		// four addresses with one key each, one request in all, which the
		// request rates never saw.
		held := append(h.unpaired[c.sess.NodeID], c)
		if len(held) > maxUnpairedPerNode {
			oldest := held[0]
			held = held[1:]
			oldest.closeAfterQueue(closeNormal, "a newer connection of this device took its place")
		}
		h.unpaired[c.sess.NodeID] = held
	}
}

// maxUnpairedPerNode bounds the sessions one node not paired holds open
// in a profile: a host restarting while its old connection lingers needs
// two.
const maxUnpairedPerNode = 2

// remove forgets a connection that has ended.
func (h *Hub) remove(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	opened := h.conns[c]
	delete(h.conns, c)
	if !opened {
		return
	}
	h.t.o.Sessions(h.profile.Name, c.sess.Role, -1)
	delete(h.pairing, c)
	if c.sess.Role == rpc.RoleNode {
		h.live[c.sess.NodeID] = slices.DeleteFunc(h.live[c.sess.NodeID], func(x *conn) bool { return x == c })
		if len(h.live[c.sess.NodeID]) == 0 {
			delete(h.live, c.sess.NodeID)
		}
		for _, id := range c.awaits {
			if waiting := slices.DeleteFunc(h.awaiting[id], func(x *conn) bool { return x == c }); len(waiting) == 0 {
				delete(h.awaiting, id)
			} else {
				h.awaiting[id] = waiting
			}
		}
		c.awaits = nil
		if held := slices.DeleteFunc(h.unpaired[c.sess.NodeID], func(x *conn) bool { return x == c }); len(held) == 0 {
			delete(h.unpaired, c.sess.NodeID)
		} else {
			h.unpaired[c.sess.NodeID] = held
		}
	}
}

// sessions lists the connections with an open session that pick selects.
func (h *Hub) sessions(pick func(*conn) bool) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*conn
	for c, opened := range h.conns {
		if opened && pick(c) {
			out = append(out, c)
		}
	}
	return out
}

// all lists every connection, open or still in its handshake.
func (h *Hub) all() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// awaitResolution makes a node's pairing session the recipient of the
// private resolution of its request.
func (h *Hub) awaitResolution(c *conn, requestID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.await(c, requestID)
}

// await is awaitResolution with h.mu held.
func (h *Hub) await(c *conn, requestID string) {
	if slices.Contains(h.awaiting[requestID], c) {
		return
	}
	h.awaiting[requestID] = append(h.awaiting[requestID], c)
	// Ids resolved since (deliver took them out) are forgotten, so a
	// session's list stays as short as what it awaits.
	c.awaits = slices.DeleteFunc(c.awaits, func(id string) bool { return !slices.Contains(h.awaiting[id], c) })
	c.awaits = append(c.awaits, requestID)
}

// DropNode closes the live sessions of a node whose pairing was removed
// (rpc.Live).
func (h *Hub) DropNode(nodeID string) {
	h.mu.Lock()
	sessions := slices.Clone(h.live[nodeID])
	h.mu.Unlock()
	for _, c := range sessions {
		c.close(closePolicy, "pairing removed")
	}
}

// Subscribe registers a channel that receives every event of the profile
// (SSE, webhooks) without ever blocking the hub; the returned function
// unregisters it.
func (h *Hub) Subscribe(ch chan db.Event) func() {
	h.mu.Lock()
	h.subscribers[ch] = struct{}{}
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.subscribers, ch)
		h.mu.Unlock()
	}
}

// Run delivers the profile's events after seq from (the outbox's end when
// the server started, read before any subscriber could read the outbox
// itself: what a subscriber's own read misses, the hub delivers) until
// ctx is done, each once, in seq order. This process's commits hand their
// events over as they commit (db.Store.OnCommit), so they reach the
// connections before the writer's answer does; what other processes
// write (the CLI's offline commands, an import) is read from the outbox
// every outboxPoll.
func (h *Hub) Run(ctx context.Context, from int64) {
	st := h.profile.Store
	h.deliverMu.Lock()
	h.last = from
	h.deliverMu.Unlock()
	st.OnCommit(func(events []db.Event) { h.committed(ctx, events) })
	defer st.OnCommit(nil)
	poll := time.NewTicker(outboxPoll)
	defer poll.Stop()
	tick := time.NewTicker(h.t.o.TickInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.tick()
		case <-poll.C:
			h.deliverMu.Lock()
			h.catchUp(ctx)
			h.deliverMu.Unlock()
		}
	}
}

// committed delivers the events of one of this process's commits. Events
// before them that the hub has not delivered (another process's, found
// when the seqs do not follow on) are read from the outbox first.
func (h *Hub) committed(ctx context.Context, events []db.Event) {
	h.deliverMu.Lock()
	defer h.deliverMu.Unlock()
	if events[0].Seq != h.last+1 {
		h.catchUp(ctx)
	}
	for _, e := range events {
		if e.Seq > h.last {
			h.deliver(ctx, e)
			h.last = e.Seq
		}
	}
}

// catchUp delivers what the outbox holds after the last delivered event;
// h.deliverMu is held.
func (h *Hub) catchUp(ctx context.Context) {
	for {
		events, err := h.profile.Store.EventsAfter(ctx, h.last, 512)
		if err != nil {
			if ctx.Err() == nil {
				h.t.o.Log.Error("read outbox", "profile", h.profile.Name, "err", err)
			}
			return
		}
		for _, e := range events {
			h.deliver(ctx, e)
			h.last = e.Seq
		}
		if len(events) < 512 {
			return
		}
	}
}

// deliver sends one event: pairing events to operators holding
// operator.pairing, a resolution privately to the node waiting for it
// (with its token on approval), and everything to subscribers.
func (h *Hub) deliver(ctx context.Context, e db.Event) {
	h.mu.Lock()
	var operators []*conn
	if e.Name == db.EventRequested || e.Name == db.EventResolved {
		operators = make([]*conn, 0, len(h.pairing))
		for c := range h.pairing {
			operators = append(operators, c)
		}
	}
	var waiting []*conn
	var res db.Resolution
	if e.Name == db.EventResolved && json.Unmarshal(e.Payload, &res) == nil {
		h.t.o.Decided(h.profile.Name, res.Decision)
		if res.RequestID != "" {
			waiting = h.awaiting[res.RequestID]
			delete(h.awaiting, res.RequestID)
		}
	}
	var sessions []*conn
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
		if dev := rpc.DeviceEvent(ctx, h.profile.Store, e); dev != nil {
			twin = mustJSON(eventFrame{Type: "event", Event: rpc.DeviceTwin[e.Name], Payload: dev})
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
func (h *Hub) dropStale(ctx context.Context, sessions []*conn) {
	for _, c := range sessions {
		token, err := h.profile.Store.Token(ctx, c.sess.NodeID)
		switch {
		case db.ErrorCode(err) == db.CodeNotFound:
			go c.close(closePolicy, "pairing removed") // not on the publishing goroutine (dropSlow)
		case err != nil:
			h.t.o.Log.Error("cannot check a live session after an import", "profile", h.profile.Name, "node", c.sess.NodeID, "err", err)
		case c.sess.TokenDigest != nil:
			if digest := sha256.Sum256([]byte(token)); subtle.ConstantTimeCompare(digest[:], c.sess.TokenDigest) != 1 {
				go c.close(closePolicy, "pairing token replaced")
			}
		}
	}
}

// privateResolution is the event a node receives about its own request.
type privateResolution struct {
	db.Resolution
	Token string `json:"token,omitempty"`
}

func (h *Hub) notifyNode(ctx context.Context, e db.Event, res db.Resolution, waiting []*conn) {
	p := privateResolution{Resolution: res}
	if res.Decision == db.DecisionApproved {
		token, err := h.profile.Store.Token(ctx, res.NodeID)
		if err != nil {
			h.t.o.Log.Error("cannot hand the new token to its node", "profile", h.profile.Name, "node", res.NodeID, "err", err)
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
func (h *Hub) tick() {
	frame := mustJSON(eventFrame{Type: "event", Event: "tick", Payload: map[string]int64{"ts": h.t.o.Now().UnixMilli()}})
	for _, c := range h.sessions(func(*conn) bool { return true }) {
		c.enqueue(frame)
	}
}

// ConnectedNodes counts the paired nodes with a live session.
func (h *Hub) ConnectedNodes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.live)
}

// Changed is signalled (coalesced) after each delivered event.
func (h *Hub) Changed() <-chan struct{} { return h.changed }

// Entry shapes a paired node, overlaying its newest live session
// (rpc.Live).
func (h *Hub) Entry(n db.Node) db.NodeEntry {
	h.mu.Lock()
	var live *conn
	if sessions := h.live[n.NodeID]; len(sessions) > 0 {
		live = sessions[len(sessions)-1]
	}
	h.mu.Unlock()
	if live == nil {
		return rpc.Entry(n, nil, 0)
	}
	return rpc.Entry(n, &live.sess, live.connectedAtMs)
}

// Sessions is a snapshot of the hub's open sessions.
func (h *Hub) Sessions() []rpc.Session {
	var out []rpc.Session
	for _, c := range h.sessions(func(*conn) bool { return true }) {
		out = append(out, c.sess)
	}
	return out
}

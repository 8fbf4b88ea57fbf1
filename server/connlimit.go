package server

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/loglimit"
)

// connLimit bounds the plain HTTP connections one source address holds
// open on the server's listeners: the same number, apart, as the
// WebSocket connections it may hold (maxConnectionsPerAddress). An
// outside trial held 50 connections with one request each, and their
// goroutines and descriptors, for as long as it kept asking: one address
// could use up the process's descriptors and shut every node out.
//
// It counts a connection from the moment it is accepted until it closes
// or becomes a WebSocket (hijacked), which the WebSocket bound counts
// from then on; a connection past the bound is answered 429 before its
// request is read, and never served. Peers in trustedProxies are not bounded: every client
// behind one comes from its address (the WebSocket bound, which reads
// the forwarded address, still applies to them).
//
// total bounds every connection of the process at once, plain or
// WebSocket, from any address (a trusted proxy's too): one address per
// 1,024 connections is easy to come by (127.0.0.0/8, an IPv6 /64), and
// an outside attack from 20 of them ran the process out of descriptors,
// so that nobody was answered for 35 s. At that bound a new connection
// takes the place of the one that has waited longest without a request
// in progress (an idle keep-alive connection, or one that has not sent a
// whole request's headers yet: net/http reports StateActive once they
// are read), which is closed, as HTTP lets a server close an idle
// connection at any time: a re-test held every place with idle
// keep-alive connections, one request each, and the operator, /readyz
// and every node got 503 for the two minutes they stayed. Failing that,
// one whose write has been blocked past stalled (pickStalled) is reset
// (its client stopped reading: a re-test held places with pipelined
// requests whose answers it never read, each safe for the two minutes
// an answer may take). Only when neither is found (every connection a
// session or a request being served) is the new one answered 503 and
// closed; descriptors stay for the databases, the refusals and the
// outgoing webhooks and replicas.
type connLimit struct {
	max     int
	total   int64
	trusted []netip.Prefix
	log     *slog.Logger
	lines   *loglimit.Limiter

	live atomic.Int64 // connections accepted and not yet closed

	mu   sync.Mutex
	open map[netip.Addr]int
	// waiting holds the connections without a request in progress (new,
	// or idle between requests), longest waiting first.
	waiting list.List
	// all holds every connection accepted and not yet closed.
	all map[*servedConn]struct{}
	// stalled is how long a write must have been blocked before its
	// connection may be closed to make room.
	stalled time.Duration
	// waitingFrom counts the waiting connections of each peer address.
	waitingFrom map[netip.Addr]int
	// noneStalled is until when a walk that found no stalled write is
	// not repeated (guarded by mu).
	noneStalled time.Time
	// evicted counts the connections closed to make room.
	evicted atomic.Int64
}

// connKey holds a request's connection in its context (the HTTP
// server's ConnContext), for bodyRead.
type connKey struct{}

func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// mayEvict tells r's connection, when it is one the server counts,
// whether it may be closed to make room (servedConn.MayEvict).
func mayEvict(r *http.Request, on bool) {
	if sc, ok := r.Context().Value(connKey{}).(*servedConn); ok {
		sc.MayEvict(on)
	}
}

// sendBuffer is the kernel's send buffer for a connection (SO_SNDBUF;
// Linux doubles it for its bookkeeping). Left to itself, Linux grows one
// to 4 MB: a re-test's clients that never read their answers pinned 3.9
// MB of kernel memory each, and some 570 of them, from one address,
// would exhaust the whole host's TCP memory (tcp_mem), every process's.
// 128 KiB carries a large export at 1.3 MB/s over a 100 ms round trip.
const sendBuffer = 64 << 10

// stalledWrite is connLimit.stalled's default: at the bound, a client
// that has not read for this long while its answer waits may lose its
// place. (5 s let a re-test's clients that never read, each closing
// itself after 3 s and coming back, keep every place.)
const stalledWrite = 250 * time.Millisecond

func newConnLimit(max, total int, trusted []netip.Prefix, log *slog.Logger) *connLimit {
	return &connLimit{max: max, total: int64(total), trusted: trusted, log: log, lines: loglimit.New(), open: map[netip.Addr]int{},
		all: map[*servedConn]struct{}{}, waitingFrom: map[netip.Addr]int{}, stalled: stalledWrite}
}

// connectionBudget is how many connections the process may hold at once:
// its descriptor limit less a reserve (maxRefusing refusals in flight,
// the databases, webhooks, replicas, listeners), at least 64.
func connectionBudget() int {
	limit := openFileLimit()
	if limit <= 0 {
		return 1 << 20
	}
	return max(64, limit-max(maxRefusing+256, limit/10))
}

// servedConn is a connection the server took. It uncounts itself from
// the live connections when it closes, whether the HTTP server or a
// WebSocket session closes it. And a write of it that ran out of time
// (every write passes here: an HTTP answer's, an event stream's, a
// WebSocket session's) sets its linger to 0, so that its close resets
// it: a client that stopped reading keeps the server's socket full, and
// closed the ordinary way the socket waits in FIN-WAIT-1 with its send
// buffer (megabytes) until the kernel gives up on the peer, minutes later
// (an outside re-trial saw 2 MB held over 66 s for one event stream).
type servedConn struct {
	net.Conn
	l      *connLimit
	closed atomic.Bool
	// wait is its place in l.waiting while it has no request in progress
	// (guarded by l.mu).
	wait *list.Element
	// peer is the address it comes from (the socket's).
	peer netip.Addr
	// writing is when its write in progress began (Unix nanoseconds; 0:
	// none).
	writing atomic.Int64
}

func (c *servedConn) Write(b []byte) (int, error) {
	c.writing.Store(time.Now().UnixNano())
	n, err := c.Conn.Write(b)
	c.writing.Store(0)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.resetOnClose()
	}
	return n, err
}

// resetOnClose makes its close reset the connection (linger 0), so that
// its send buffer goes at once.
func (c *servedConn) resetOnClose() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
}

func (c *servedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.live.Add(-1)
		c.l.mu.Lock()
		delete(c.l.all, c)
		c.l.unwait(c)
		c.l.mu.Unlock()
	}
	return c.Conn.Close()
}

// MayEvict puts a connection among those waiting, which may be closed
// to make room (true), or takes it out again (false): the WebSocket
// transport says so around its handshake, which waits up to 10 s for the
// client's connect (a re-test kept places so by opening upgrades and
// sending nothing), and bodyRead while a request's body is outstanding (up to
// 10 s: an unauthenticated verify's too).
func (c *servedConn) MayEvict(on bool) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	switch {
	case on && !c.closed.Load():
		c.l.await(c, false)
	case !on:
		c.l.unwait(c)
	}
}

// peer is the address c counts against, and whether it is bounded at
// all (a trusted proxy's is not).
func (l *connLimit) peer(c net.Conn) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	for _, p := range l.trusted {
		if p.Contains(addr) {
			return addr, false
		}
	}
	return addr, true
}

// track is an http.Server's ConnState: it counts new connections and
// uncounts them when they close or are hijacked.
// Every connection the server gets is told StateNew once, then one of
// StateClosed or StateHijacked last, so its peer is counted once and
// uncounted once.
//
// It also keeps l.waiting: a connection waits from StateNew until its
// request is read (StateActive), and again from StateIdle.
func (l *connLimit) track(c net.Conn, state http.ConnState) {
	addr, bounded := l.peer(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	if sc, ok := c.(*servedConn); ok {
		switch {
		case state == http.StateNew || state == http.StateIdle:
			l.await(sc, true)
		default:
			l.unwait(sc)
		}
	}
	if !bounded || state != http.StateNew && state != http.StateClosed && state != http.StateHijacked {
		return
	}
	if state == http.StateNew {
		l.open[addr]++
	} else if l.open[addr]--; l.open[addr] <= 0 {
		delete(l.open, addr)
	}
}

// await puts sc at the back of l.waiting (moved there, with again, if
// it is in already). l.mu is held.
func (l *connLimit) await(sc *servedConn, again bool) {
	switch {
	case sc.wait == nil:
		sc.wait = l.waiting.PushBack(sc)
		l.waitingFrom[sc.peer]++
	case again:
		l.waiting.MoveToBack(sc.wait)
	}
}

// unwait takes sc out of l.waiting. l.mu is held.
func (l *connLimit) unwait(sc *servedConn) {
	if sc.wait == nil {
		return
	}
	l.waiting.Remove(sc.wait)
	sc.wait = nil
	if l.waitingFrom[sc.peer]--; l.waitingFrom[sc.peer] <= 0 {
		delete(l.waitingFrom, sc.peer)
	}
}

// pickWaiting chooses the waiting connection to close: among the longest
// waiting (pickAmong), the first of the address that has the most
// waiting. Under a flood of new connections every waiting one is young:
// oldest first alone reached a real client's connection within
// milliseconds of its opening (a re-test saw an operator's WebSocket
// closed in its handshake); the flood's addresses hold far more.
func (l *connLimit) pickWaiting() *servedConn {
	var best *servedConn
	most := 0
	e := l.waiting.Front()
	for range pickAmong {
		if e == nil {
			break
		}
		c := e.Value.(*servedConn)
		if n := l.waitingFrom[c.peer]; n > most {
			best, most = c, n
		}
		e = e.Next()
	}
	return best
}

// pickAmong is how many of the longest waiting connections pickWaiting
// looks at.
const pickAmong = 64

// pickStalled chooses, at the bound with no connection waiting, one whose
// write has been blocked past l.stalled (its client does not read): of
// up to stallSample connections (Go's map order is random), the longest
// blocked from the address with the most blocked. l.mu is held.
func (l *connLimit) pickStalled(now time.Time) *servedConn {
	type blocked struct {
		c     *servedConn
		since int64 // a snapshot: the write may end meanwhile
	}
	limit := now.Add(-l.stalled).UnixNano()
	var found []blocked
	from := map[netip.Addr]int{}
	seen := 0
	for c := range l.all {
		if seen++; seen > stallSample {
			break
		}
		if w := c.writing.Load(); w != 0 && w < limit {
			found = append(found, blocked{c, w})
			from[c.peer]++
		}
	}
	var best blocked
	for _, b := range found {
		if best.c == nil || from[b.c.peer] > from[best.c.peer] || from[b.c.peer] == from[best.c.peer] && b.since < best.since {
			best = b
		}
	}
	return best.c
}

// stallSample bounds the connections pickStalled looks at.
const stallSample = 512

// evict closes, to make room for a new connection, the one that has
// waited longest without a request in progress, else the one whose
// write has been blocked longest past l.stalled; it says whether there
// was one.
func (l *connLimit) evict() bool {
	l.mu.Lock()
	var sc *servedConn
	if sc = l.pickWaiting(); sc != nil {
		l.unwait(sc)
	} else if now := time.Now(); now.After(l.noneStalled) {
		if sc = l.pickStalled(now); sc != nil {
			sc.resetOnClose()
		} else {
			// Not looked for again for a while: a flood of refused
			// connections costs no walk each.
			l.noneStalled = now.Add(100 * time.Millisecond)
		}
	}
	l.mu.Unlock()
	if sc == nil {
		return false
	}
	sc.Close() // the server's read or write fails, and it lets the connection go
	l.evicted.Add(1)
	return true
}

// listener bounds ln: a connection from an address at the bound is never
// handed to the HTTP server; it is answered and closed on a goroutine of
// its own. (The server counts the ones it gets in track, on the same
// goroutine as Accept, right after it.)
func (l *connLimit) listener(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, l: l, refusing: make(chan struct{}, maxRefusing)}
}

// maxRefusing bounds the refusals answered at once: past it, under a
// flood, a connection is closed without its answer.
const maxRefusing = 256

type limitedListener struct {
	net.Listener
	l        *connLimit
	refusing chan struct{}
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, bounded := ll.l.peer(c)
		ll.l.mu.Lock()
		over := bounded && ll.l.open[addr] >= ll.l.max
		ll.l.mu.Unlock()
		full := false
		if !over && ll.l.live.Load() >= ll.l.total {
			if full = !ll.l.evict(); !full {
				ll.l.lines.Log(ll.l.log, slog.LevelWarn, "the server holds as many connections as it can: one without a request in progress, or whose client stopped reading, was closed to make room; raise its limit of open files (ulimit -n) if they are wanted", "max", ll.l.total)
			}
		}
		if !full && !over {
			ll.l.live.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetWriteBuffer(sendBuffer)
			}
			sc := &servedConn{Conn: c, l: ll.l, peer: addr}
			ll.l.mu.Lock()
			ll.l.all[sc] = struct{}{}
			ll.l.mu.Unlock()
			return sc, nil
		}
		status, msg := "429 Too Many Requests", fmt.Sprintf("too many connections from this address (at most %d); close some, or raise maxConnectionsPerAddress", ll.l.max)
		if full {
			status, msg = "503 Service Unavailable", fmt.Sprintf("the server holds as many connections as it can (%d, for its limit of open files); try again later", ll.l.total)
			ll.l.lines.Log(ll.l.log, slog.LevelWarn, "connection refused: the server holds as many connections as it can; raise its limit of open files (ulimit -n) if they are wanted", "remote", addr.String(), "max", ll.l.total)
		} else {
			ll.l.lines.LogFrom(addr.String(), ll.l.log, slog.LevelWarn, "connection refused: too many connections from this address", "remote", addr.String(), "max", ll.l.max)
		}
		select {
		case ll.refusing <- struct{}{}:
			go func() {
				defer func() { <-ll.refusing }()
				ll.l.refuse(c, status, msg)
			}()
		default:
			c.Close()
		}
	}
}

// refuse answers a connection past the bound with 429 and the API's
// error, then reads what the client sent before closing (for up to a
// second), so that the close does not reset the connection and lose the
// answer (a re-trial saw every refusal end in a reset).
func (l *connLimit) refuse(c net.Conn, status, msg string) {
	body := mustJSON(errorBody{Error: errorDetail{Code: string(db.CodeLimit), Message: msg}})
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n", status, len(body)+1, body)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.CopyN(io.Discard, c, 64<<10)
	c.Close()
}

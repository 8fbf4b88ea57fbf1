package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

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
// from then on. Peers in trustedProxies are not bounded: every client
// behind one comes from its address (the WebSocket bound, which reads
// the forwarded address, still applies to them).
type connLimit struct {
	max     int
	trusted []netip.Prefix
	log     *slog.Logger
	lines   *loglimit.Limiter

	mu   sync.Mutex
	open map[netip.Addr]int
	// counted holds the connections counted, so that a state change of
	// one that was refused (closed at once) is not uncounted.
	counted map[net.Conn]netip.Addr
}

func newConnLimit(max int, trusted []netip.Prefix, log *slog.Logger) *connLimit {
	return &connLimit{max: max, trusted: trusted, log: log, lines: loglimit.New(),
		open: map[netip.Addr]int{}, counted: map[net.Conn]netip.Addr{}}
}

// track is an http.Server's ConnState: it counts new connections, refuses
// one past the bound with a 429 before reading its request, and uncounts
// them when they close or are hijacked.
func (l *connLimit) track(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			return
		}
		addr := ap.Addr().Unmap()
		for _, p := range l.trusted {
			if p.Contains(addr) {
				return
			}
		}
		l.mu.Lock()
		if l.open[addr] >= l.max {
			l.mu.Unlock()
			l.refuse(c, addr)
			return
		}
		l.open[addr]++
		l.counted[c] = addr
		l.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		l.mu.Lock()
		if addr, ok := l.counted[c]; ok {
			delete(l.counted, c)
			if l.open[addr]--; l.open[addr] <= 0 {
				delete(l.open, addr)
			}
		}
		l.mu.Unlock()
	}
}

// refuse answers a connection past the bound and closes it; the server
// then finds it closed and ends it. It runs in the server's accept loop
// (where StateNew is told), before the connection is read, so the request
// is never served; a new socket's send buffer is empty, so the write does
// not wait (and may wait a second at most).
func (l *connLimit) refuse(c net.Conn, addr netip.Addr) {
	l.lines.LogFrom(addr.String(), l.log, slog.LevelWarn, "connection refused: too many connections from this address", "remote", addr.String(), "max", l.max)
	body := fmt.Sprintf("too many connections from this address (at most %d); close some, or raise maxConnectionsPerAddress\n", l.max)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	c.Close()
}

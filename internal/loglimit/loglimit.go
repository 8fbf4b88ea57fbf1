// Package loglimit bounds what clients can make the server log: values
// they chose are cut short, and lines they can cause at will (refused
// requests, failed connects) are let through at a bounded rate, the rest
// counted.
package loglimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxValue is the most bytes of a client's value (a Host, an Origin, a
// path, a client id) a log line holds.
const MaxValue = 200

// Value is s cut to MaxValue bytes at a character boundary, saying how
// long it was.
func Value(s string) string {
	if len(s) <= MaxValue {
		return s
	}
	cut := MaxValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

// Limiter lets Burst lines through in each Window and counts the others;
// the next line it lets through says how many were left out.
type Limiter struct {
	Burst  int
	Window time.Duration
	now    func() time.Time // nil: time.Now

	mu         sync.Mutex
	start      time.Time
	lines      int
	suppressed int
	// fromKey is LogFrom's: when each client's last line of a shape went
	// through, and how many of them were left out since.
	fromKey map[uint64]*keyLines
}

type keyLines struct {
	at   time.Time
	left int
}

// KeyWindow is how often one client gets the same line through (LogFrom):
// a single misbehaving node cannot spend a Limiter's Burst on its own.
// maxKeys bounds the lines remembered.
const (
	KeyWindow = time.Minute
	maxKeys   = 4096
)

// Lines in Window is how many lines of one kind a client can cause (a
// refused request, a refused connect, a failed token).
const (
	Lines  = 20
	Window = 10 * time.Second
)

// New is a Limiter of Lines a Window.
func New() *Limiter {
	return &Limiter{Burst: Lines, Window: Window}
}

// allow reports whether a line may be written now, and how many were left
// out before it.
func (l *Limiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allowAt(l.clock())
}

func (l *Limiter) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// allowKey is allow for one client's line: at most one a KeyWindow for
// the key, within the Limiter's Burst. It also says how many of the
// key's lines were left out since its last.
func (l *Limiter) allowKey(key uint64) (ok bool, left, keyLeft int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	k := l.fromKey[key]
	if k != nil && now.Sub(k.at) < KeyWindow {
		k.left++
		return false, 0, 0
	}
	if ok, left = l.allowAt(now); !ok {
		return false, 0, 0
	}
	if k == nil {
		if len(l.fromKey) >= maxKeys {
			for key, k := range l.fromKey {
				if now.Sub(k.at) >= KeyWindow {
					delete(l.fromKey, key)
				}
			}
			if len(l.fromKey) >= maxKeys { // all recent: forget them (bounded memory over fewer lines)
				clear(l.fromKey)
			}
		}
		if l.fromKey == nil {
			l.fromKey = map[uint64]*keyLines{}
		}
		k = &keyLines{}
		l.fromKey[key] = k
	}
	keyLeft = k.left
	k.at, k.left = now, 0
	return true, left, keyLeft
}

func (l *Limiter) allowAt(now time.Time) (bool, int) {
	if now.Sub(l.start) >= l.Window {
		l.start, l.lines = now, 0
	}
	if l.lines >= l.Burst {
		l.suppressed++
		return false, 0
	}
	l.lines++
	left := l.suppressed
	l.suppressed = 0
	return true, left
}

// Log writes msg at level unless the limiter is spent; a line after some
// were left out carries "suppressed" with their number.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	ok, left := l.allow()
	if !ok {
		return
	}
	if left > 0 {
		args = append(args, "suppressed", left)
	}
	log.Log(context.Background(), level, msg, args...)
}

// LogFrom is Log for a line a client causes (client: its address):
// besides the Limiter's bound, the same line from the same client gets
// through once a KeyWindow, the next one carrying "repeats" with the
// number left out. Lines are the same when msg and args are, but for the
// digits in their strings: a retry-in, a port, a number in a name do not
// make another line (numbers passed as numbers do).
func (l *Limiter) LogFrom(client string, log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	ok, left, repeats := l.allowKey(lineKey(client, msg, args))
	if !ok {
		return
	}
	if repeats > 0 {
		args = append(args, "repeats", repeats)
	}
	if left > 0 {
		args = append(args, "suppressed", left)
	}
	log.Log(context.Background(), level, msg, args...)
}

var keySeed = maphash.MakeSeed()

// lineKey hashes a line's client and shape: its strings without their
// digits, its other values as they print.
func lineKey(client, msg string, args []any) uint64 {
	var h maphash.Hash
	h.SetSeed(keySeed)
	h.WriteString(client)
	for _, a := range append([]any{msg}, args...) {
		h.WriteByte(0)
		s, ok := a.(string)
		if !ok {
			s = fmt.Sprint(a)
		} else {
			s = strings.Map(func(r rune) rune {
				if '0' <= r && r <= '9' {
					return -1
				}
				return r
			}, s)
		}
		h.WriteString(s)
	}
	return h.Sum64()
}

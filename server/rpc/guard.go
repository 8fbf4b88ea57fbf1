package rpc

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/loglimit"
)

// Guard keeps callers in check on every face: failed credentials lock an
// address out of one profile's credential class for a while, and new
// pending requests spend from per-address and per-profile rates.
type Guard struct {
	log      *slog.Logger
	failures *limiter
	requests *rates
	// failedLines bounds the lines failed attempts write: from many
	// addresses they are not bounded by the lockout. refusedLines bounds
	// those of refused node.pair.request calls, which a caller makes at
	// will: a line a minute from one address.
	failedLines, refusedLines *loglimit.Limiter
}

// NewGuard returns a guard on clock now.
func NewGuard(now func() time.Time, log *slog.Logger) *Guard {
	return &Guard{log: log, failures: newLimiter(now), requests: newRates(now), failedLines: loglimit.New(), refusedLines: loglimit.New()}
}

// Locked reports whether addr is locked out of profile's credential
// class, and for how long still, rounded up to whole seconds (as every
// refusal says it).
func (g *Guard) Locked(profile, class, addr string) (time.Duration, bool) {
	retry, locked := g.failures.blocked(limitKey{profile, class, addr})
	return time.Duration(wholeSeconds(retry)) * time.Second, locked
}

// Failed counts a failed attempt and logs it, and the lockout it starts:
// profile, class and address, never the credential.
func (g *Guard) Failed(profile, class, addr string) {
	g.failedLines.Log(g.log, slog.LevelWarn, "authentication failed", "profile", profile, "class", class, "remote", addr)
	if g.failures.fail(limitKey{profile, class, addr}) {
		g.log.Warn("too many failed attempts: locked out", "profile", profile, "class", class, "remote", addr, "for", lockout)
	}
}

// LockedError is the REST refusal of a caller Locked for retry.
func LockedError(class string, retry time.Duration) error {
	return &db.Error{Code: db.CodeRateLimited, RetryAfter: retry,
		Message: fmt.Sprintf("too many failed attempts with a wrong %s from this address; retry in %ds", class, int(retry.Seconds()))}
}

func wholeSeconds(d time.Duration) int { return int(d.Seconds() + 0.999) }

// AdmitRequest is Admit for a node.pair.request call: a refusal is
// logged (a connect's refusal is logged by the connect, with its reason).
func (g *Guard) AdmitRequest(s *Session) error {
	err := g.Admit(s)
	if err != nil {
		g.refusedLines.LogFrom(s.RemoteIP, g.log, slog.LevelWarn, "pairing request refused", "profile", s.Profile.Name, "remote", s.RemoteIP, "reason", WireError(err).Message)
	}
	return err
}

// Admit spends a new pending request from the profile's rate and its
// caller's address's: a flood of fresh device keys cannot fill the
// pending list. It does not log.
func (g *Guard) Admit(s *Session) error {
	p := s.Profile
	addrKey := p.Name + "\x00" + s.RemoteIP
	wait, ok := g.requests.take(addrKey, p.RequestsPerAddress)
	what := "from this address"
	if ok {
		if wait, ok = g.requests.take(p.Name, p.RequestsPerProfile); !ok {
			g.requests.refund(addrKey, p.RequestsPerAddress)
			what = "in this profile"
		}
	}
	if ok {
		return nil
	}
	secs := wholeSeconds(wait)
	return &db.Error{Code: db.CodeRateLimited, RetryAfter: time.Duration(secs) * time.Second,
		Message: fmt.Sprintf("too many new pairing requests %s; retry in %ds", what, secs),
		Details: map[string]int64{"retryAfterMs": int64(secs) * 1000}}
}

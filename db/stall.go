package db

import (
	"context"
	"fmt"
	"time"
)

// WriteStall is how long the profile's writes have been tried without
// one going through: the running one's statements, its COMMIT's fsync,
// its retries while another process holds the database's write lock,
// and the writes before it that failed after those retries; 0 once a
// write commits. A disk that stops answering, or a lock never let go,
// shows here as a figure that grows without end.
func (s *Store) WriteStall() time.Duration {
	d, _ := s.commit.stalled()
	return d
}

// Writing says whether a transaction is on the writer connection now.
func (s *Store) Writing() bool {
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	return s.commit.busy
}

// Stalled is nil unless writes have been tried for limit or more
// without one going through; then it says for how long, which write
// runs, and what to look at.
func (s *Store) Stalled(limit time.Duration) error {
	d, what := s.commit.stalled()
	if d < limit {
		return nil
	}
	return fmt.Errorf("no write has gone through for %s: the latest one (%s) waits on %s and every other write of the profile waits behind it (a disk or network filesystem that does not answer, another process holding the database's write lock such as a sqlite3 shell inside BEGIN, or a large import); writes resume on their own once it returns",
		roundStall(d), what, s.path)
}

// WatchWrites logs, once a minute, while writes have been tried for
// limit or more without one going through (Stalled), and once when one
// goes through again, until ctx ends.
func (s *Store) WatchWrites(ctx context.Context, limit time.Duration) {
	t := time.NewTicker(min(time.Second, limit/4))
	defer t.Stop()
	var worst time.Duration
	var logged time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := s.WriteStall()
		switch {
		case d >= limit:
			worst = max(worst, d)
			if time.Since(logged) >= time.Minute {
				s.log.Error("writes are stalled", "err", s.Stalled(limit))
				logged = time.Now()
			}
		case worst > 0 && d < worst:
			// A write committed (d counts a newer stall, if any).
			s.log.Info("writes go through again", "stalledFor", roundStall(worst).String())
			worst, logged = 0, time.Time{}
		}
	}
}

// roundStall rounds a stall for people: to the second from 10 s on,
// to a tenth of one below.
func roundStall(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

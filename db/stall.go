package db

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pairgate/pairgate/internal/loglimit"
)

// WriteStall is how long the write now running on the writer connection
// has waited: its statements, its COMMIT's fsync, and its retries while
// another process holds the database's write lock; 0 while no write
// runs. A disk that stops answering shows here as a figure that grows
// without end, and every other write waits behind it.
func (s *Store) WriteStall() time.Duration {
	d, _ := s.commit.stalled()
	return d
}

// Stalled is nil unless the write now running has waited limit or more;
// then it says which, for how long, and what to look at.
func (s *Store) Stalled(limit time.Duration) error {
	d, what := s.commit.stalled()
	if d < limit {
		return nil
	}
	return fmt.Errorf("no write has gone through for %s: the running one (%s) waits on %s and every other write of the profile waits behind it (a disk or network filesystem that does not answer, another process holding the database's write lock such as a sqlite3 shell inside BEGIN, or a large import); writes resume on their own once it returns",
		d.Round(time.Second), what, s.path)
}

// WatchWrites logs, once a minute, while a write has run for limit or
// more (Stalled), and once when writes go through again, until ctx ends.
func (s *Store) WatchWrites(ctx context.Context, limit time.Duration) {
	t := time.NewTicker(min(time.Second, limit/4))
	defer t.Stop()
	lines := &loglimit.Limiter{Burst: 1, Window: time.Minute}
	var worst time.Duration
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
			lines.Log(s.log, slog.LevelError, "writes are stalled", "err", s.Stalled(limit))
		case worst > 0 && d < worst:
			// The stalled write returned (d counts a newer one, if any).
			s.log.Info("writes go through again", "stalledFor", worst.Round(time.Second).String())
			worst = 0
		}
	}
}

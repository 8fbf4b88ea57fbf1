package db

import (
	"context"
	"database/sql"
	"errors"
	"slices"
)

// WebhookCursor is where one webhook endpoint's delivery stands.
type WebhookCursor struct {
	ID string `json:"id"`
	// Cursor is the seq of the last event delivered (or filtered out).
	Cursor     int64 `json:"cursor"`
	Generation int64 `json:"-"`
	// Attempts failed at the event after Cursor, since FailingSinceMs.
	Attempts       int    `json:"attempts"`
	FailingSinceMs int64  `json:"failingSince,omitempty"`
	NextAttemptMs  int64  `json:"nextAttemptAt,omitempty"`
	LastError      string `json:"lastError,omitempty"`
	// DeadAtMs is set when retries ran out; delivery waits for Redeliver.
	DeadAtMs int64 `json:"deadAt,omitempty"`
}

// ErrWebhookMoved means a redeliver changed the cursor while the caller
// was delivering: it must reload the cursor and carry on from there.
var ErrWebhookMoved = errors.New("webhook cursor moved by a redeliver")

const webhookColumns = `id, cursor, generation, attempts, coalesce(failing_since_ms, 0), coalesce(next_attempt_ms, 0), coalesce(last_error, ''), coalesce(dead_at_ms, 0)`

func scanWebhook(row interface{ Scan(...any) error }) (WebhookCursor, error) {
	var w WebhookCursor
	err := row.Scan(&w.ID, &w.Cursor, &w.Generation, &w.Attempts, &w.FailingSinceMs, &w.NextAttemptMs, &w.LastError, &w.DeadAtMs)
	return w, err
}

// OpenWebhook returns the endpoint's cursor, creating it at the newest
// event when the endpoint is new (created): a new endpoint gets what
// happens from now on (Redeliver replays older events).
func (s *Store) OpenWebhook(ctx context.Context, id string) (w WebhookCursor, created bool, err error) {
	err = s.writeTx(ctx, "open webhook", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO webhooks (id, cursor)
			VALUES (?, (`+qIssuedSeq+`)) ON CONFLICT (id) DO NOTHING`, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		created = n == 1
		w, err = scanWebhook(tx.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
		return err
	})
	return w, created, err
}

// Webhook reads an endpoint's cursor.
func (s *Store) Webhook(ctx context.Context, id string) (WebhookCursor, error) {
	w, err := scanWebhook(s.read.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return w, errorf(CodeNotFound, "unknown webhook %s", id)
	}
	return w, classify(err, "read webhook")
}

// SaveWebhook stores the endpoint's progress, unless a redeliver moved
// the cursor since w was read (ErrWebhookMoved).
func (s *Store) SaveWebhook(ctx context.Context, w WebhookCursor) error {
	var moved bool
	err := s.writeTx(ctx, "save webhook", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET cursor = ?, attempts = ?, failing_since_ms = nullif(?, 0),
			next_attempt_ms = nullif(?, 0), last_error = nullif(?, ''), dead_at_ms = nullif(?, 0)
			WHERE id = ? AND generation = ?`,
			w.Cursor, w.Attempts, w.FailingSinceMs, w.NextAttemptMs, w.LastError, w.DeadAtMs, w.ID, w.Generation)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		moved = n == 0
		return err
	})
	if err == nil && moved {
		return ErrWebhookMoved
	}
	return err
}

// RedeliverWebhook restarts an endpoint's delivery at event from (or,
// when from is 0, at the event after its cursor), clearing failures and a
// dead letter. Where that event is no longer kept, the cursor moves on to
// just before the first one that is.
func (s *Store) RedeliverWebhook(ctx context.Context, id string, from int64) (WebhookCursor, error) {
	var w WebhookCursor
	err := s.writeTx(ctx, "redeliver webhook", func(tx *sql.Tx) error {
		var last int64 // the newest event handed out, pruned or not
		if err := tx.QueryRowContext(ctx, qIssuedSeq).Scan(&last); err != nil {
			return err
		}
		if from > last+1 {
			return invalidf("from %d is beyond the newest event (%d)", from, last)
		}
		// The cursor goes to just before the first event kept from there:
		// the events before it are pruned (or their ids were skipped), and
		// the answer says where delivery really resumes.
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET cursor = coalesce(
				(SELECT min(seq) - 1 FROM events WHERE seq > CASE WHEN ?1 > 0 THEN ?1 - 1 ELSE webhooks.cursor END),
				CASE WHEN ?1 > 0 THEN ?1 - 1 ELSE cursor END),
			generation = generation + 1, attempts = 0, failing_since_ms = NULL, next_attempt_ms = NULL,
			last_error = NULL, dead_at_ms = NULL WHERE id = ?2`, from, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errorf(CodeNotFound, "unknown webhook %s", id)
		}
		w, err = scanWebhook(tx.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
		return err
	})
	return w, err
}

// Undelivered is how many events retention pruned before the webhook
// delivered them, since the store opened: events it will never send.
func (s *Store) Undelivered(id string) int64 {
	s.undeliveredMu.Lock()
	defer s.undeliveredMu.Unlock()
	return s.undelivered[id]
}

func (s *Store) countUndelivered(id string, n int) {
	s.undeliveredMu.Lock()
	defer s.undeliveredMu.Unlock()
	if s.undelivered == nil {
		s.undelivered = map[string]int64{}
	}
	s.undelivered[id] += int64(n)
}

// ForgetWebhooks deletes the cursors of the endpoints not in keep (taken
// out of the configuration) and returns them: an endpoint added back
// starts afresh at the newest event, and a forgotten one's events are not
// counted as lost when pruned. It writes only when there is one to forget.
func (s *Store) ForgetWebhooks(ctx context.Context, keep []string) ([]WebhookCursor, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, classify(err, "read webhooks")
	}
	var gone []WebhookCursor
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			rows.Close()
			return nil, classify(err, "read webhooks")
		}
		if !slices.Contains(keep, w.ID) {
			gone = append(gone, w)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err, "read webhooks")
	}
	if len(gone) == 0 {
		return nil, nil
	}
	err = s.writeTx(ctx, "forget webhooks", func(tx *sql.Tx) error {
		for _, w := range gone {
			if _, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, w.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return gone, err
}

// SetWebhookFilter tells the sweeper which events each webhook sends
// (wants reports whether webhook id sends events named event), so that
// the pruned events it counts as a webhook's loss are only those it
// would have sent. Unset, every event counts.
func (s *Store) SetWebhookFilter(wants func(id, event string) bool) {
	s.webhookFilter.Store(&wants)
}

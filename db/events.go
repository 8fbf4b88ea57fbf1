package db

import (
	"context"
	"database/sql"
	"encoding/json"
)

// Event names. The first two are OpenClaw's and are broadcast to operators;
// the rest are pairgate's own audit entries.
const (
	EventRequested = "node.pair.requested"
	EventResolved  = "node.pair.resolved"
	EventRenamed   = "node.renamed"
	EventConnected = "node.connected"
)

// Decisions carried by EventResolved.
const (
	DecisionApproved = "approved"
	DecisionRejected = "rejected"
	DecisionExpired  = "expired"
	DecisionRemoved  = "removed"
)

// Event is one row of the outbox.
type Event struct {
	Seq     int64           `json:"seq"`
	TS      int64           `json:"ts"`
	Name    string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Actor   string          `json:"actor"`
	Source  string          `json:"source,omitempty"`
	// Request is the stored request of an EventRequested handed over by
	// this process's commit (OnCommit): it holds what the legacy payload
	// does not (the device key). Nil when the event was read back.
	Request *PendingRequest `json:"-"`
}

// Resolution is the payload of EventResolved, in OpenClaw's shape.
type Resolution struct {
	RequestID string `json:"requestId,omitempty"`
	NodeID    string `json:"nodeId"`
	Decision  string `json:"decision"`
	TS        int64  `json:"ts"`
}

// Rename is the payload of EventRenamed.
type Rename struct {
	NodeID      string `json:"nodeId"`
	DisplayName string `json:"displayName"`
	TS          int64  `json:"ts"`
}

// Connection is the payload of EventConnected.
type Connection struct {
	NodeID   string `json:"nodeId"`
	RemoteIP string `json:"remoteIp,omitempty"`
	TS       int64  `json:"ts"`
}

// appendEvent writes an event in the caller's transaction, so the change
// and its event commit or vanish together.
func (s *Store) appendEvent(ctx context.Context, tx *sql.Tx, ts int64, name string, payload any, by Origin) (int64, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return 0, err
	}
	res, err := s.w.exec(ctx, tx,
		qInsertEvent,
		ts, name, string(b), by.Actor, by.Source)
	if err != nil {
		return 0, err
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	e := Event{Seq: seq, TS: ts, Name: name, Payload: b, Actor: by.Actor, Source: by.Source}
	if r, ok := payload.(PendingRequest); ok {
		e.Request = &r
	}
	s.commit.record(e)
	return seq, nil
}

// EventsAfter returns up to limit events with seq > after, oldest first.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	var out []Event
	err := s.readTx(ctx, "read events", func(tx *sql.Tx) error {
		rows, err := s.r.query(ctx, tx,
			qEventsAfter,
			after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e Event
			var payload string
			if err := rows.Scan(&e.Seq, &e.TS, &e.Name, &payload, &e.Actor, &e.Source); err != nil {
				return err
			}
			e.Payload = json.RawMessage(payload)
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// OldestSeq is the seq of the oldest event the outbox still keeps
// (retention prunes older ones); 0 when it keeps none.
func (s *Store) OldestSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.r.queryRow(ctx, nil, `SELECT min(seq) FROM events`).Scan(&seq)
	return seq.Int64, classify(err, "read oldest event")
}

// IssuedSeq is the highest seq ever handed out: LastSeq, or more when
// retention pruned the newest events (or a restart after a crash moved
// the seq on, see checkBoot). An event stream measures resume points
// against it: against LastSeq, once every event was pruned, a client that
// had seen them all was told its database was restored.
func (s *Store) IssuedSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.r.queryRow(ctx, nil, qIssuedSeq).Scan(&seq)
	return seq.Int64, classify(err, "read the last seq handed out")
}

// CountEventsAfter counts the events kept after seq: how far behind a reader
// at seq is. Seqs have gaps (a restart after a crash, a restore, move them
// on), so the difference of two seqs is no count of events.
func (s *Store) CountEventsAfter(ctx context.Context, seq int64) (int64, error) {
	var n int64
	err := s.r.queryRow(ctx, nil, qCountEventsAfter, seq).Scan(&n)
	return n, classify(err, "count events")
}

// LastSeq is the sequence number of the newest event kept, 0 when there
// is none.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.r.queryRow(ctx, nil, qLastSeq).Scan(&seq)
	return seq.Int64, classify(err, "read last event")
}

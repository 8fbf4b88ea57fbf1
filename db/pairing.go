package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RequestResult is node.pair.request's answer. It never holds a token.
type RequestResult struct {
	Status  string         `json:"status"`
	Request PendingRequest `json:"request"`
	Created bool           `json:"created"`
}

// Approval is node.pair.approve's answer: the new pairing with its token,
// the only time the token is shown.
type Approval struct {
	RequestID string `json:"requestId"`
	Node      Node   `json:"node"`
}

// Rejection is node.pair.reject's answer.
type Rejection struct {
	RequestID string `json:"requestId"`
	NodeID    string `json:"nodeId"`
}

// Verification is node.pair.verify's answer.
type Verification struct {
	OK   bool  `json:"ok"`
	Node *Node `json:"node,omitempty"`
}

// Renamed is node.rename's answer.
type Renamed struct {
	NodeID      string `json:"nodeId"`
	DisplayName string `json:"displayName"`
}

// Removed is node.pair.remove's answer.
type Removed struct {
	NodeID string `json:"nodeId"`
}

// Listing is node.pair.list's answer: pending newest first, paired by
// approval newest first, no tokens.
type Listing struct {
	Pending []PendingRequest `json:"pending"`
	Paired  []Node           `json:"paired"`
}

const requestColumns = `request_id, node_id, ` + metaColumns + `, silent, is_repair, ts_ms, status, decided_at_ms, extra, public_key`

const nodeColumns = `node_id, ` + metaColumns + `, created_at_ms, approved_at_ms, bins, last_connected_at_ms, extra, public_key`

type scanner interface{ Scan(dest ...any) error }

// keptRequest is a row of requests.
type keptRequest struct {
	PendingRequest
	status      string
	decidedAtMs int64
}

func scanRequest(sc scanner) (keptRequest, error) {
	var r keptRequest
	var m metaScan
	var silent sql.NullBool
	var decided sql.NullInt64
	var extra, publicKey sql.NullString
	dest := append([]any{&r.RequestID, &r.NodeID}, m.dest()...)
	dest = append(dest, &silent, &r.IsRepair, &r.TS, &r.status, &decided, &extra, &publicKey)
	if err := sc.Scan(dest...); err != nil {
		return r, err
	}
	var err error
	if r.NodeMeta, err = m.meta(); err != nil {
		return r, err
	}
	if r.Extra, err = fieldsFromColumn(extra); err != nil {
		return r, fmt.Errorf("extra: %w", err)
	}
	if silent.Valid {
		r.Silent = &silent.Bool
	}
	r.decidedAtMs = decided.Int64
	r.PublicKey = publicKey.String
	return r, nil
}

func scanNode(sc scanner, more ...any) (Node, error) {
	var n Node
	var m metaScan
	var bins, extra, publicKey sql.NullString
	var lastConnected sql.NullInt64
	dest := append([]any{&n.NodeID}, m.dest()...)
	dest = append(dest, &n.CreatedAtMs, &n.ApprovedAtMs, &bins, &lastConnected, &extra, &publicKey)
	if err := sc.Scan(append(dest, more...)...); err != nil {
		return n, err
	}
	var err error
	if n.NodeMeta, err = m.meta(); err != nil {
		return n, err
	}
	if err := fromJSONColumn(bins, &n.Bins); err != nil {
		return n, fmt.Errorf("bins: %w", err)
	}
	if n.Extra, err = fieldsFromColumn(extra); err != nil {
		return n, fmt.Errorf("extra: %w", err)
	}
	n.LastConnectedAtMs = lastConnected.Int64
	n.PublicKey = publicKey.String
	return n, nil
}

// expiredBefore is the cutoff: a pending request with ts below it has
// expired (now - ts > ttl).
func (s *Store) expiredBefore(now int64) int64 { return now - s.ttlMs }

// Request records a node's request to join (node.pair.request). While the
// node has a live pending request, that request is returned unchanged with
// Created false and nothing is written.
func (s *Store) Request(ctx context.Context, in RequestInput, by Origin) (RequestResult, error) {
	if err := in.normalize(); err != nil {
		return RequestResult{}, err
	}
	var res RequestResult
	admit := &faceAdmit{ask: in.Admit}
	// Lazy unless the policy approves it in the same transaction: a
	// decision is durable when acknowledged.
	err := s.lazyTx(ctx, "request pairing", !in.AutoApprove, func(tx *sql.Tx) error {
		admit.refused = nil
		var err error
		res, err = s.openRequest(ctx, tx, PendingRequest{NodeID: in.NodeID, NodeMeta: in.NodeMeta, Silent: in.Silent}, by, admit.check())
		if err != nil {
			return err
		}
		return s.opened(ctx, tx, in, &res, by)
	})
	if admit.refused != nil {
		return RequestResult{}, admit.refused
	}
	return res, err
}

// opened tells the face who awaits the node's pending request, then
// approves a request just created, in its own transaction, when the
// input says the policy applies.
func (s *Store) opened(ctx context.Context, tx *sql.Tx, in RequestInput, res *RequestResult, by Origin) error {
	if in.Awaiting != nil {
		in.Awaiting(res.Request.RequestID)
	}
	if !in.AutoApprove || !res.Created {
		return nil
	}
	if _, err := s.approve(ctx, tx, res.Request.RequestID, "", Origin{Actor: "policy", Source: by.Source}); err != nil {
		return err
	}
	res.Status = StatusApproved
	return nil
}

// faceAdmit carries a face's Admit (a flood limit) into a transaction.
// Its refusal is not a store error: it is kept here and returned to the
// caller as it is, instead of being classified as internal.
type faceAdmit struct {
	ask     func() error
	refused error
}

// check is the function openRequest asks, nil when there is no Admit.
func (a *faceAdmit) check() func() error {
	if a.ask == nil {
		return nil
	}
	return func() error {
		a.refused = a.ask()
		return a.refused
	}
}

// openRequest stores req (its node, metadata, silent flag and public key)
// as a new pending request, unless the node has a live one, which it
// returns unchanged with Created false. admit, when set, is asked before
// a new request is written (a flood limit); its error is returned as it
// is. It runs in the caller's transaction.
func (s *Store) openRequest(ctx context.Context, tx *sql.Tx, req PendingRequest, by Origin, admit func() error) (RequestResult, error) {
	now := s.nowMs()
	existing, err := scanRequest(s.w.queryRow(ctx, tx,
		qPendingOfNode, req.NodeID))
	switch {
	case err == nil && existing.TS >= s.expiredBefore(now):
		return RequestResult{Status: StatusPending, Request: existing.PendingRequest, Created: false}, nil
	case err == nil:
		// Expired but not yet swept: retire it (with its event) so the
		// new request can take the node's one pending slot.
		if err := s.expire(ctx, tx, now, []keptRequest{existing}); err != nil {
			return RequestResult{}, err
		}
	case !errors.Is(err, sql.ErrNoRows):
		return RequestResult{}, err
	}
	var live int
	if err := s.w.queryRow(ctx, tx,
		qCountLive, s.expiredBefore(now)).Scan(&live); err != nil {
		return RequestResult{}, err
	}
	if live >= s.maxPending {
		return RequestResult{}, errorf(CodeLimit, "too many pending requests: this profile holds at most %d (maxPending); approve or reject some, or wait for them to expire", s.maxPending)
	}
	if admit != nil {
		if err := admit(); err != nil {
			return RequestResult{}, err
		}
	}
	if err := s.w.queryRow(ctx, tx, qNodeExists, req.NodeID).Scan(&req.IsRepair); err != nil {
		return RequestResult{}, err
	}
	req.RequestID, req.TS = NewUUID(), now
	args := append([]any{req.RequestID, req.NodeID}, metaArgs(req.NodeMeta)...)
	args = append(args, nullBool(req.Silent), req.IsRepair, req.TS, nullString(req.PublicKey))
	if _, err := s.w.exec(ctx, tx, qInsertRequest, args...); err != nil {
		return RequestResult{}, err
	}
	if _, err := s.appendEvent(ctx, tx, now, EventRequested, req, by); err != nil {
		return RequestResult{}, err
	}
	return RequestResult{Status: StatusPending, Request: req, Created: true}, nil
}

// loadPending finds a request that can still be decided, or says why not.
func (s *Store) loadPending(ctx context.Context, tx *sql.Tx, requestID string, now int64) (keptRequest, error) {
	r, err := scanRequest(s.w.queryRow(ctx, tx, qRequestByID, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, errorf(CodeNotFound, "unknown requestId")
	}
	if err != nil {
		return r, err
	}
	if r.status == StatusPending && r.TS < s.expiredBefore(now) {
		r.status, r.decidedAtMs = StatusExpired, r.TS+s.ttlMs
	}
	switch r.status {
	case StatusApproved, StatusRejected:
		return r, errorf(CodeConflict, "request %s was already %s at %s", r.RequestID, r.status, formatMs(r.decidedAtMs))
	case StatusExpired:
		return r, errorf(CodeExpired, "request %s expired at %s", r.RequestID, formatMs(r.decidedAtMs))
	}
	return r, nil
}

func formatMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// decide marks a pending request decided at decidedAt (approved, rejected
// or expired) and writes its resolution event, stamped now.
func (s *Store) decide(ctx context.Context, tx *sql.Tx, r keptRequest, decision string, decidedAt, now int64, by Origin) error {
	res, err := s.w.exec(ctx, tx,
		qDecide,
		decision, decidedAt, by.Actor, r.RequestID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("decide %s: %d rows changed (%v)", r.RequestID, n, err)
	}
	_, err = s.appendEvent(ctx, tx, now, EventResolved,
		Resolution{RequestID: r.RequestID, NodeID: r.NodeID, Decision: decision, TS: now}, by)
	return err
}

// Approve decides a request in the node's favour (node.pair.approve): the
// node gets a fresh token (any earlier one stops verifying at once), the
// request's metadata and its public key (pinned: only a connect signed by
// it is handed the token); an earlier pairing's createdAtMs, an
// operator's rename, and its pinned key when the request carries none,
// are kept.
func (s *Store) Approve(ctx context.Context, requestID string, by Origin) (Approval, error) {
	return s.ApproveNamed(ctx, requestID, "", by)
}

// ApproveNamed approves like Approve and, when displayName is not empty,
// names the node in the same transaction, as an operator's rename
// (device.pair.approve's displayName).
func (s *Store) ApproveNamed(ctx context.Context, requestID, displayName string, by Origin) (Approval, error) {
	requestID = strings.TrimSpace(requestID)
	var name string
	if displayName != "" {
		var err error
		if name, err = normalizeDisplayName(displayName); err != nil {
			return Approval{}, err
		}
	}
	var out Approval
	err := s.writeTx(ctx, "approve", func(tx *sql.Tx) error {
		var err error
		out, err = s.approve(ctx, tx, requestID, name, by)
		return err
	})
	return out, err
}

// approve approves a pending request in tx: a fresh token, the request's
// metadata and key, name (when not empty) as an operator's rename.
func (s *Store) approve(ctx context.Context, tx *sql.Tx, requestID, name string, by Origin) (Approval, error) {
	now := s.nowMs()
	r, err := s.loadPending(ctx, tx, requestID, now)
	if err != nil {
		return Approval{}, err
	}
	node := Node{NodeID: r.NodeID, Token: NewToken(), NodeMeta: r.NodeMeta, CreatedAtMs: now, ApprovedAtMs: now, PublicKey: r.PublicKey}
	var renamed bool
	var oldName, oldKey sql.NullString
	err = s.w.queryRow(ctx, tx, qNodeForApproval, r.NodeID).
		Scan(&node.CreatedAtMs, &oldName, &renamed, &oldKey)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Approval{}, err
	}
	if node.PublicKey == "" {
		// A request without a key (a v1 or legacy connect, an operator's
		// request) keeps the key pinned before: it proves no device.
		node.PublicKey = oldKey.String
	}
	if renamed {
		node.DisplayName = oldName.String
	}
	if name != "" {
		node.DisplayName, renamed = name, true
	}
	args := append([]any{node.NodeID, hashToken(node.Token), s.seal.seal(node.NodeID, node.Token), renamed},
		metaArgs(node.NodeMeta)...)
	args = append(args, node.CreatedAtMs, node.ApprovedAtMs, nullString(node.PublicKey))
	if _, err := s.w.exec(ctx, tx, qUpsertNode, args...); err != nil {
		return Approval{}, err
	}
	if err := s.decide(ctx, tx, r, DecisionApproved, now, now, by); err != nil {
		return Approval{}, err
	}
	return Approval{RequestID: r.RequestID, Node: node}, nil
}

// Reject decides a request against the node (node.pair.reject). An existing
// pairing of the node is left as it is.
func (s *Store) Reject(ctx context.Context, requestID string, by Origin) (Rejection, error) {
	requestID = strings.TrimSpace(requestID)
	var out Rejection
	err := s.writeTx(ctx, "reject", func(tx *sql.Tx) error {
		now := s.nowMs()
		r, err := s.loadPending(ctx, tx, requestID, now)
		if err != nil {
			return err
		}
		if err := s.decide(ctx, tx, r, DecisionRejected, now, now, by); err != nil {
			return err
		}
		out = Rejection{RequestID: r.RequestID, NodeID: r.NodeID}
		return nil
	})
	return out, err
}

// Verify checks a node's token (node.pair.verify). A wrong or unknown pair
// is a successful call with OK false. It only reads.
func (s *Store) Verify(ctx context.Context, nodeID, token string) (Verification, error) {
	nodeID = strings.TrimSpace(nodeID)
	var digest []byte
	n, err := scanNode(s.r.queryRow(ctx, nil, qVerify, nodeID), &digest)
	if errors.Is(err, sql.ErrNoRows) {
		// Hash anyway, so an unknown node costs what a known one does.
		tokenMatches(token, make([]byte, 32))
		return Verification{OK: false}, nil
	}
	if err != nil {
		return Verification{}, classify(err, "verify")
	}
	if token == "" || !tokenMatches(token, digest) {
		return Verification{OK: false}, nil
	}
	n.Token = token
	return Verification{OK: true, Node: &n}, nil
}

// Rename sets a paired node's display name (node.rename). The name is an
// operator's choice: a later repair approval keeps it.
func (s *Store) Rename(ctx context.Context, nodeID, displayName string, by Origin) (Renamed, error) {
	name, err := normalizeDisplayName(displayName)
	if err != nil {
		return Renamed{}, err
	}
	nodeID = strings.TrimSpace(nodeID)
	out := Renamed{NodeID: nodeID, DisplayName: name}
	err = s.writeTx(ctx, "rename", func(tx *sql.Tx) error {
		// The name it already has, chosen by an operator: nothing changes,
		// and no event (and no webhook delivery) says it did.
		var same bool
		err := s.w.queryRow(ctx, tx, `SELECT display_name IS ? AND display_name_renamed = 1 FROM nodes WHERE node_id = ?`, name, nodeID).Scan(&same)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errorf(CodeNotFound, "unknown nodeId")
		case err != nil:
			return err
		case same:
			return nil
		}
		if err := s.changeNode(ctx, tx, `UPDATE nodes SET display_name = ?, display_name_renamed = 1 WHERE node_id = ?`, name, nodeID); err != nil {
			return err
		}
		now := s.nowMs()
		_, err = s.appendEvent(ctx, tx, now, EventRenamed, Rename{NodeID: nodeID, DisplayName: name, TS: now}, by)
		return err
	})
	return out, err
}

// Remove ends a node's pairing (node.pair.remove): its token stops
// verifying at once.
func (s *Store) Remove(ctx context.Context, nodeID string, by Origin) (Removed, error) {
	nodeID = strings.TrimSpace(nodeID)
	err := s.writeTx(ctx, "remove", func(tx *sql.Tx) error {
		if err := s.changeNode(ctx, tx, `DELETE FROM nodes WHERE node_id = ?`, nodeID); err != nil {
			return err
		}
		now := s.nowMs()
		_, err := s.appendEvent(ctx, tx, now, EventResolved, Resolution{NodeID: nodeID, Decision: DecisionRemoved, TS: now}, by)
		return err
	})
	return Removed{NodeID: nodeID}, err
}

// ConnectLogEvery bounds the node.connected audit rows: at most one per
// node in this time, however often it reconnects.
const ConnectLogEvery = time.Minute

// MarkConnected records that a paired node opened a session now
// (lastConnectedAtMs, at every connect). It is presence, not pairing: the
// event it writes is for the audit log only, and coalesced to at most one
// per node every ConnectLogEvery, so a node cannot flood the log.
func (s *Store) MarkConnected(ctx context.Context, nodeID, remoteIP string, by Origin) error {
	return s.lazyTx(ctx, "mark connected", true, func(tx *sql.Tx) error {
		return s.markConnected(ctx, tx, nodeID, remoteIP, by)
	})
}

func (s *Store) markConnected(ctx context.Context, tx *sql.Tx, nodeID, remoteIP string, by Origin) error {
	now := s.nowMs()
	if err := s.changeNode(ctx, tx, qMarkConnected, now, nodeID); err != nil {
		return err
	}
	res, err := s.w.exec(ctx, tx, qLogConnect, now, ConnectLogEvery.Milliseconds(), nodeID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // logged within the last ConnectLogEvery
	}
	_, err = s.appendEvent(ctx, tx, now, EventConnected, Connection{NodeID: nodeID, RemoteIP: remoteIP, TS: now}, by)
	return err
}

// Token returns a paired node's current token, unsealed. Only the private
// approval notice to the node itself uses it.
func (s *Store) Token(ctx context.Context, nodeID string) (string, error) {
	var sealed []byte
	err := s.r.queryRow(ctx, nil, `SELECT token_sealed FROM nodes WHERE node_id = ?`, nodeID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errorf(CodeNotFound, "unknown nodeId")
	}
	if err != nil {
		return "", classify(err, "read token")
	}
	token, err := s.seal.open(nodeID, sealed)
	if err != nil {
		return "", errorf(CodeUnavailable, "the token of %s cannot be unsealed: pairing.key was replaced", nodeID)
	}
	return token, nil
}

// changeNode runs a statement that must touch the row of one paired node.
func (s *Store) changeNode(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	res, err := s.w.exec(ctx, tx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(CodeNotFound, "unknown nodeId")
	}
	return nil
}

// List returns live pending requests and paired nodes from one snapshot.
func (s *Store) List(ctx context.Context) (Listing, error) {
	var out Listing
	err := s.bulkRead(ctx, "list", func(tx *sql.Tx) error {
		var err error
		if out.Pending, err = s.pending(ctx, tx, "DESC"); err != nil {
			return err
		}
		out.Paired, err = s.queryNodes(ctx, tx, `ORDER BY approved_at_ms DESC, node_id`)
		return err
	})
	return out, err
}

// Pending returns the live pending requests, newest first.
func (s *Store) Pending(ctx context.Context) ([]PendingRequest, error) {
	var out []PendingRequest
	err := s.bulkRead(ctx, "list pending", func(tx *sql.Tx) error {
		var err error
		out, err = s.pending(ctx, tx, "DESC")
		return err
	})
	return out, err
}

// Nodes returns the paired nodes, newest approval first, without tokens.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	err := s.bulkRead(ctx, "list nodes", func(tx *sql.Tx) error {
		var err error
		out, err = s.queryNodes(ctx, tx, `ORDER BY approved_at_ms DESC, node_id`)
		return err
	})
	return out, err
}

// Counts are the sizes of a profile's pairing state.
type Counts struct {
	Pending int `json:"pending"`
	Paired  int `json:"paired"`
}

// Counts counts live pending requests and paired nodes in one snapshot.
func (s *Store) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	err := s.readTx(ctx, "count", func(tx *sql.Tx) error {
		if err := s.r.queryRow(ctx, tx, qCountLive, s.expiredBefore(s.nowMs())).Scan(&c.Pending); err != nil {
			return err
		}
		return s.r.queryRow(ctx, tx, `SELECT count(*) FROM nodes`).Scan(&c.Paired)
	})
	return c, err
}

// Node returns one paired node without its token.
func (s *Store) Node(ctx context.Context, nodeID string) (Node, error) {
	n, err := scanNode(s.r.queryRow(ctx, nil, qNodeByID, strings.TrimSpace(nodeID)))
	if errors.Is(err, sql.ErrNoRows) {
		return n, errorf(CodeNotFound, "unknown nodeId")
	}
	return n, classify(err, "read node")
}

// RequestStatus returns a kept request and what became of it.
func (s *Store) RequestStatus(ctx context.Context, requestID string) (RequestStatus, error) {
	r, err := scanRequest(s.r.queryRow(ctx, nil, qRequestByID, strings.TrimSpace(requestID)))
	if errors.Is(err, sql.ErrNoRows) {
		return RequestStatus{}, errorf(CodeNotFound, "unknown requestId")
	}
	if err != nil {
		return RequestStatus{}, classify(err, "read request")
	}
	if r.status == StatusPending && r.TS < s.expiredBefore(s.nowMs()) {
		r.status, r.decidedAtMs = StatusExpired, r.TS+s.ttlMs
	}
	return RequestStatus{Request: r.PendingRequest, Status: r.status, DecidedAtMs: r.decidedAtMs}, nil
}

// pending reads live pending requests ordered by ts in the given direction.
func (s *Store) pending(ctx context.Context, tx *sql.Tx, direction string) ([]PendingRequest, error) {
	kept, err := queryRequests(ctx, s.r, tx, `SELECT `+requestColumns+` FROM requests
		WHERE status = 'pending' AND ts_ms >= ? ORDER BY ts_ms `+direction+`, request_id `+direction,
		s.expiredBefore(s.nowMs()))
	out := make([]PendingRequest, len(kept))
	for i, r := range kept {
		out[i] = r.PendingRequest
	}
	return out, err
}

func (s *Store) queryNodes(ctx context.Context, tx *sql.Tx, order string) ([]Node, error) {
	rows, err := s.r.query(ctx, tx, `SELECT `+nodeColumns+` FROM nodes `+order)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Node{}
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

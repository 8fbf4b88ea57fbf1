package db

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"strings"
)

// NodeConnect is what a node whose device signature was verified
// presents at connect: its device id (the node id), the public key it
// signed with, the tokens it sent (auth.token, auth.deviceToken; empty
// ones are ignored) and what it says about itself.
type NodeConnect struct {
	NodeID    string
	PublicKey string
	Tokens    []string
	NodeMeta
	// Admit, when set, is asked before a new request is opened (the
	// server's flood limit); its refusal is returned as it is.
	Admit func() error
}

// Admission is how a node's connect was admitted.
type Admission struct {
	// Paired says the node is paired and proved it: by a token that
	// verifies, or by a signature of its pinned key.
	Paired bool
	// Token is the node's token, set when the connect was signed by the
	// key pinned at approval: hello-ok hands it to that device.
	Token string
	// IssuedAtMs is when Token was issued (the approval).
	IssuedAtMs int64
	// TokenDigest is the SHA-256 of the node's current token when Paired:
	// a session remembers it, so that an import that re-keys the node ends
	// the session.
	TokenDigest []byte
	// Request is the pending request of a node that is not (or not
	// provably) paired: opened by this connect when Created, else the
	// node's live one.
	Request *PendingRequest
	Created bool
	// Mismatch says a token was presented and none verified.
	Mismatch bool
}

// AdmitNode applies the connect-time pairing rule to a verified node
// device, in one transaction:
//   - a token that verifies, or a signature of the key pinned at approval:
//     paired (and connected now); the token is handed back only when the
//     key is the pinned one;
//   - a token that does not verify, from a key not pinned: Mismatch;
//   - otherwise the node needs approval: its live pending request is
//     reused, or one is opened (nodeId = device id, the connect's
//     metadata and key, the usual event and expiry); a repair when the
//     node id is paired under another key or none.
func (s *Store) AdmitNode(ctx context.Context, in NodeConnect, by Origin) (Admission, error) {
	in.NodeID = strings.TrimSpace(in.NodeID)
	if err := (&RequestInput{NodeID: in.NodeID, NodeMeta: in.NodeMeta}).normalize(); err != nil {
		return Admission{}, err
	}
	var out Admission
	admit := &faceAdmit{ask: in.Admit}
	err := s.lazyTx(ctx, "admit node", true, func(tx *sql.Tx) error {
		out, admit.refused = Admission{}, nil
		var digest, sealed []byte
		var pinned sql.NullString
		var approvedAt int64
		err := s.w.queryRow(ctx, tx, `SELECT token_hash, token_sealed, public_key, approved_at_ms FROM nodes WHERE node_id = ?`, in.NodeID).
			Scan(&digest, &sealed, &pinned, &approvedAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		paired := err == nil
		keyPinned := paired && pinned.Valid && subtle.ConstantTimeCompare([]byte(pinned.String), []byte(in.PublicKey)) == 1
		presented := ""
		for _, t := range in.Tokens {
			if t == "" {
				continue
			}
			presented = t
			if paired && tokenMatches(t, digest) {
				out.Paired = true
				break
			}
		}
		switch {
		case out.Paired:
		case keyPinned:
			// The approved key proves the device; a stale token it still
			// holds (from before a repair) is replaced by the current one.
			token, err := s.seal.open(in.NodeID, sealed)
			if err != nil {
				return errorf(CodeUnavailable, "the token of %s cannot be unsealed: pairing.key was replaced", in.NodeID)
			}
			out.Paired, presented = true, token
		case presented != "":
			out.Mismatch = true
		}
		if out.Paired {
			out.TokenDigest = digest
			if keyPinned {
				out.Token, out.IssuedAtMs = presented, approvedAt
			}
			return s.markConnected(ctx, tx, in.NodeID, in.RemoteIP, by)
		}
		res, err := s.openRequest(ctx, tx, PendingRequest{NodeID: in.NodeID, NodeMeta: in.NodeMeta, PublicKey: in.PublicKey}, by, admit.check())
		if err != nil {
			return err
		}
		if !res.Created && res.Request.PublicKey == "" && in.PublicKey != "" {
			// A request made for this node by other means (an operator's
			// node.pair.request) takes the key: the node id is the key's
			// digest, so no other key can sign for it.
			if _, err := s.w.exec(ctx, tx, `UPDATE requests SET public_key = ? WHERE request_id = ?`, in.PublicKey, res.Request.RequestID); err != nil {
				return err
			}
			res.Request.PublicKey = in.PublicKey
		}
		out.Request, out.Created = &res.Request, res.Created
		return nil
	})
	if admit.refused != nil {
		return Admission{}, admit.refused
	}
	return out, err
}

// AdoptRequest completes, with the node's own node.pair.request, the
// request its connect opened: the request takes what the node now says
// (and its silent flag) and counts as created by this call, so that a
// client speaking node.pair.request sees what it always saw. When the
// request is no longer pending, it is an ordinary Request.
func (s *Store) AdoptRequest(ctx context.Context, requestID string, in RequestInput, by Origin) (RequestResult, error) {
	if err := in.normalize(); err != nil {
		return RequestResult{}, err
	}
	var res RequestResult
	admit := &faceAdmit{ask: in.Admit}
	err := s.lazyTx(ctx, "request pairing", !in.AutoApprove, func(tx *sql.Tx) error {
		admit.refused = nil
		r, err := scanRequest(s.w.queryRow(ctx, tx, qRequestByID, requestID))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err != nil || r.status != StatusPending || r.NodeID != in.NodeID || r.TS < s.expiredBefore(s.nowMs()) {
			if res, err = s.openRequest(ctx, tx, PendingRequest{NodeID: in.NodeID, NodeMeta: in.NodeMeta, Silent: in.Silent}, by, admit.check()); err != nil {
				return err
			}
			return s.opened(ctx, tx, in, &res, by)
		}
		args := append(metaArgs(in.NodeMeta), nullBool(in.Silent), requestID)
		if _, err := s.w.exec(ctx, tx, `UPDATE requests SET display_name = ?, platform = ?, version = ?,
			core_version = ?, ui_version = ?, device_family = ?, model_identifier = ?, caps = ?, commands = ?,
			permissions = ?, remote_ip = ?, silent = ? WHERE request_id = ?`, args...); err != nil {
			return err
		}
		r.NodeMeta, r.Silent = in.NodeMeta, in.Silent
		res = RequestResult{Status: StatusPending, Request: r.PendingRequest, Created: true}
		return s.opened(ctx, tx, in, &res, by)
	})
	if admit.refused != nil {
		return RequestResult{}, admit.refused
	}
	return res, err
}

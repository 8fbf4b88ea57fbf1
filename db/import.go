package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Import modes.
const (
	ImportMerge   = "merge"
	ImportReplace = "replace"
)

// EventImported is the audit entry of an import.
const EventImported = "legacy.imported"

// ImportReport says what an import did (or, dry, would do).
type ImportReport struct {
	Mode   string            `json:"mode"`
	DryRun bool              `json:"dryRun"`
	SHA256 map[string]string `json:"sha256"`

	PairedAdded    int `json:"pairedAdded"`
	PairedReplaced int `json:"pairedReplaced"`
	PairedKept     int `json:"pairedKept"`
	PairedRemoved  int `json:"pairedRemoved"`
	// SkippedRemoved counts the files' pairings a merge left out because
	// this profile removed the node after that approval: merged back, a
	// revoked token would verify again.
	SkippedRemoved int `json:"skippedRemoved"`

	PendingAdded     int `json:"pendingAdded"`
	PendingUnchanged int `json:"pendingUnchanged"`
	// PendingRemoved counts, in a replace, the store's pending requests
	// the files lack: closed as expired (node.pair.resolved), kept for
	// GET …/requests/ID until retention prunes them.
	PendingRemoved int `json:"pendingRemoved"`
	// PendingClosed counts the store's pending requests older than an
	// imported approval of their node: decided since, in the gateway the
	// files come from, they are closed as expired.
	PendingClosed int `json:"pendingClosed"`
	// Skipped pending records: expired, a requestId the store already
	// knows, a node that already has a pending request, or a request
	// older than its node's approval (decided since: the file is older
	// than the pairing).
	SkippedExpired     int `json:"skippedExpired"`
	SkippedKnown       int `json:"skippedKnown"`
	SkippedNodePending int `json:"skippedNodePending"`
	SkippedDecided     int `json:"skippedDecided"`

	// UnknownFields are kept and written back by export.
	UnknownFields []string `json:"unknownFields,omitempty"`
	Changed       bool     `json:"changed"`
}

var errDryRun = errors.New("dry run")

// Import applies legacy state in one transaction: all of it or none.
// merge (default) adds what the store lacks and lets the later approval
// win for nodes in both (ties: the store); replace makes the store's
// pairings and pending requests exactly the files'. A second import of
// the same files changes nothing. The import writes one audit event.
func (s *Store) Import(ctx context.Context, st LegacyState, mode string, dryRun bool, by Origin) (ImportReport, error) {
	if mode == "" {
		mode = ImportMerge
	}
	if mode != ImportMerge && mode != ImportReplace {
		return ImportReport{}, invalidf("mode: want merge or replace, got %q", mode)
	}
	if err := checkTimes(st, s.nowMs()); err != nil {
		return ImportReport{}, err
	}
	var rep ImportReport
	err := s.writeTx(ctx, "import", func(tx *sql.Tx) error {
		rep = ImportReport{Mode: mode, DryRun: dryRun, SHA256: st.SHA256, UnknownFields: st.Unknown}
		now := s.nowMs()
		ps := s.w.forTx(tx)
		defer ps.close()
		if err := s.checkPendingFirst(ctx, ps, st, now, by); err != nil {
			return err
		}
		if err := s.importPaired(ctx, tx, ps, st.Paired, mode, now, by, &rep); err != nil {
			return err
		}
		if err := s.importPending(ctx, tx, ps, st, mode, now, by, &rep); err != nil {
			return err
		}
		rep.Changed = rep.PairedAdded+rep.PairedReplaced+rep.PairedRemoved+rep.PendingAdded+rep.PendingRemoved+rep.PendingClosed > 0
		if dryRun {
			return errDryRun
		}
		_, err := s.appendEvent(ctx, tx, now, EventImported, rep, by)
		return err
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	return rep, err
}

// checkPendingFirst refuses, before any of the import's work, files with
// more pending requests the import will certainly add than maxPending
// allows: live, of a request id the store does not know, of a node with
// no live request in the store, made after every approval of its node
// (the store's and the files'), one a node. The check after the work
// (importPending) stays the exact one; an outside trial waited 13–15 s
// for it on 100,000 nodes. Files with no more requests than maxPending
// cost nothing here.
func (s *Store) checkPendingFirst(ctx context.Context, ps *txStatements, st LegacyState, now int64, by Origin) error {
	if len(st.Pending) <= s.maxPending || by.Source == "auto" {
		return nil
	}
	fileApproval := make(map[string]int64, len(st.Paired))
	for _, n := range st.Paired {
		fileApproval[n.NodeID] = max(fileApproval[n.NodeID], n.ApprovedAtMs)
	}
	cutoff := s.expiredBefore(now)
	nodes := map[string]bool{}
	for _, r := range st.Pending {
		if r.TS < cutoff || nodes[r.NodeID] || fileApproval[r.NodeID] >= r.TS {
			continue
		}
		var status string
		if err := ps.queryRow(ctx, `SELECT status FROM requests WHERE request_id = ?`, r.RequestID).Scan(&status); !errors.Is(err, sql.ErrNoRows) {
			if err != nil {
				return err
			}
			continue // known
		}
		if _, err := scanRequest(ps.queryRow(ctx, qPendingOfNode, r.NodeID)); !errors.Is(err, sql.ErrNoRows) {
			if err != nil {
				return err
			}
			continue // the node has one: this one may be skipped
		}
		var approvedAt int64
		err := ps.queryRow(ctx, `SELECT approved_at_ms FROM nodes WHERE node_id = ?`, r.NodeID).Scan(&approvedAt)
		switch {
		case err == nil && approvedAt >= r.TS:
			continue
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		nodes[r.NodeID] = true
	}
	if len(nodes) > s.maxPending {
		return errorf(CodeInvalid, "the import would leave at least %d live pending requests, and this profile holds at most %d (maxPending): every new request would be refused until they expire; raise maxPending, or import fewer", len(nodes), s.maxPending)
	}
	return nil
}

func (s *Store) importPaired(ctx context.Context, tx *sql.Tx, ps *txStatements, nodes []Node, mode string, now int64, by Origin, rep *ImportReport) error {
	inFile := map[string]bool{}
	var removedAtMs map[string]int64 // read once, when a merge first needs it
	for _, n := range nodes {
		inFile[n.NodeID] = true
		var digest []byte
		cur, err := scanNode(ps.queryRow(ctx, `SELECT `+nodeColumns+`, token_hash FROM nodes WHERE node_id = ?`, n.NodeID), &digest)
		switch {
		case errors.Is(err, sql.ErrNoRows) && mode == ImportMerge:
			if removedAtMs == nil {
				if removedAtMs, err = s.removals(ctx, tx); err != nil {
					return err
				}
			}
			if at, ok := removedAtMs[n.NodeID]; ok && at >= n.ApprovedAtMs {
				rep.SkippedRemoved++ // removed here after that approval
				continue
			}
			rep.PairedAdded++
		case errors.Is(err, sql.ErrNoRows):
			rep.PairedAdded++
		case err != nil:
			return err
		case sameNode(cur, digest, n):
			rep.PairedKept++
			continue
		case mode == ImportMerge && n.ApprovedAtMs <= cur.ApprovedAtMs:
			rep.PairedKept++ // the store's pairing is as new or newer
			continue
		default:
			rep.PairedReplaced++
		}
		args := append([]any{n.NodeID, hashToken(n.Token), s.seal.seal(n.NodeID, n.Token)}, metaArgs(n.NodeMeta)...)
		args = append(args, n.CreatedAtMs, n.ApprovedAtMs, jsonColumn(n.Bins), nullInt(n.LastConnectedAtMs), n.Extra.column())
		if _, err := ps.exec(ctx, `INSERT OR REPLACE INTO nodes (node_id, token_hash, token_sealed, `+metaColumns+`,
				created_at_ms, approved_at_ms, bins, last_connected_at_ms, extra)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
			return err
		}
		// A pending request from before this approval was decided since;
		// approved here, it would replace the imported token.
		r, err := scanRequest(ps.queryRow(ctx, qPendingOfNode, n.NodeID))
		switch {
		case err == nil && r.TS <= n.ApprovedAtMs:
			if err := s.decide(ctx, tx, r, DecisionExpired, now, now, by); err != nil {
				return err
			}
			rep.PendingClosed++
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
	}
	if mode != ImportReplace {
		return nil
	}
	removed, err := s.deleteMissing(ctx, tx, ps, `SELECT node_id FROM nodes`, `DELETE FROM nodes WHERE node_id = ?`, inFile)
	rep.PairedRemoved = len(removed)
	if err != nil {
		return err
	}
	// Each pairing a replace ends is a removal, told as one: to event
	// streams and webhooks, and to the export's overwrite check.
	for _, id := range removed {
		if _, err := s.appendEvent(ctx, tx, now, EventResolved, Resolution{NodeID: id, Decision: DecisionRemoved, TS: now}, by); err != nil {
			return err
		}
	}
	return nil
}

// removals maps each node the outbox records this store removing
// (events are kept 30 days) to when it last did: one pass over the
// outbox, however many nodes are looked up.
func (s *Store) removals(ctx context.Context, q querier) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT json_extract(payload, '$.nodeId'), max(ts_ms) FROM events
		WHERE name = ? AND json_extract(payload, '$.decision') = ? GROUP BY 1`, EventResolved, DecisionRemoved)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id sql.NullString
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id.String] = at
	}
	return out, rows.Err()
}

// querier is a transaction or a pool.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// sameNode says whether the stored record is what the file says.
func sameNode(cur Node, digest []byte, n Node) bool {
	return tokenMatches(n.Token, digest) && cur.CreatedAtMs == n.CreatedAtMs && cur.ApprovedAtMs == n.ApprovedAtMs &&
		cur.LastConnectedAtMs == n.LastConnectedAtMs && slices.Equal(cur.Bins, n.Bins) &&
		sameMeta(cur.NodeMeta, n.NodeMeta) && sameFields(cur.Extra, n.Extra)
}

func sameMeta(a, b NodeMeta) bool {
	return bytes.Equal(mustMarshal(a), mustMarshal(b))
}

func sameFields(a, b Fields) bool {
	return a.column() == b.column()
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func (s *Store) importPending(ctx context.Context, tx *sql.Tx, ps *txStatements, st LegacyState, mode string, now int64, by Origin, rep *ImportReport) error {
	inFile := map[string]bool{}
	for _, r := range st.Pending {
		inFile[r.RequestID] = true
	}
	if mode == ImportReplace {
		// The store's pending requests the files lack are closed, each
		// with its node.pair.resolved (expired), as a merge closes one it
		// replaces: deleted silently, a consumer that had been told of
		// one waited for its end forever, and GET …/requests/ID said
		// unknown.
		pending, err := queryRequests(ctx, s.w, tx, `SELECT `+requestColumns+` FROM requests WHERE status = 'pending'`)
		if err != nil {
			return err
		}
		gone := slices.DeleteFunc(pending, func(r keptRequest) bool { return inFile[r.RequestID] })
		for _, r := range gone {
			if err := s.decide(ctx, tx, r, DecisionExpired, now, now, by); err != nil {
				return err
			}
		}
		rep.PendingRemoved = len(gone)
	}
	cutoff := s.expiredBefore(now)
	for _, r := range st.Pending {
		if r.TS < cutoff {
			rep.SkippedExpired++
			continue
		}
		var status string
		err := ps.queryRow(ctx, `SELECT status FROM requests WHERE request_id = ?`, r.RequestID).Scan(&status)
		switch {
		case err == nil && status == StatusPending:
			rep.PendingUnchanged++
			continue
		case err == nil:
			rep.SkippedKnown++
			continue
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		existing, err := scanRequest(ps.queryRow(ctx, qPendingOfNode, r.NodeID))
		switch {
		case err == nil && existing.TS >= cutoff:
			rep.SkippedNodePending++
			continue
		case err == nil:
			if err := s.expire(ctx, tx, now, []keptRequest{existing}); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		// A request from before its node's approval was decided since
		// (OpenClaw drops a request when it approves it): kept, its
		// approval would replace the node's token.
		var approvedAt int64
		err = ps.queryRow(ctx, `SELECT approved_at_ms FROM nodes WHERE node_id = ?`, r.NodeID).Scan(&approvedAt)
		switch {
		case err == nil && approvedAt >= r.TS:
			rep.SkippedDecided++
			continue
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if st.repairUnknown[r.RequestID] {
			r.IsRepair = err == nil // the same lookup: the node is paired
		}
		args := append([]any{r.RequestID, r.NodeID}, metaArgs(r.NodeMeta)...)
		args = append(args, nullBool(r.Silent), r.IsRepair, r.TS, r.Extra.column())
		if _, err := ps.exec(ctx, `INSERT INTO requests (request_id, node_id, `+metaColumns+`, silent, is_repair, ts_ms, extra)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
			return fmt.Errorf("request %s: %w", r.RequestID, err)
		}
		// Announced as a node's own request is: a consumer that approves
		// from events learns of it before it expires (it learned only of
		// its expiry).
		if _, err := s.appendEvent(ctx, tx, now, EventRequested, r, by); err != nil {
			return err
		}
		rep.PendingAdded++
	}
	if rep.PendingAdded == 0 {
		return nil
	}
	// More live requests than maxPending would refuse every new request
	// until they expire (a trial imported 10,000 under the default 1,000).
	var live int
	if err := s.w.queryRow(ctx, tx, qCountLive, cutoff).Scan(&live); err != nil {
		return err
	}
	// Not for the import at a first start (source "auto"): refused, the
	// whole profile would go unserved until the requests expired.
	if live > s.maxPending && by.Source != "auto" {
		return errorf(CodeInvalid, "the import would leave %d live pending requests, and this profile holds at most %d (maxPending): every new request would be refused until they expire; raise maxPending, or import fewer", live, s.maxPending)
	}
	return nil
}

// deleteMissing deletes, by del, every id that query finds and keep lacks
// (a replace import removing what the files no longer hold), and says how
// many it deleted.
func (s *Store) deleteMissing(ctx context.Context, tx *sql.Tx, ps *txStatements, query, del string, keep map[string]bool) ([]string, error) {
	rows, err := s.w.query(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	var gone []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		if !keep[id] {
			gone = append(gone, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range gone {
		if _, err := ps.exec(ctx, del, id); err != nil {
			return nil, err
		}
	}
	return gone, nil
}

// maxFutureMs is how far ahead of this clock a legacy file's times may
// be (another host's clock); a later time is a hand edit or a broken
// clock.
const maxFutureMs = 24 * 60 * 60 * 1000

// checkTimes refuses negative times and times more than maxFutureMs
// ahead: a pairing approved "in 2100" would win every merge against the
// store's later real decisions, and a request from then would never
// expire.
func checkTimes(st LegacyState, now int64) error {
	var p problems
	check := func(file, key, field string, ms int64) {
		switch {
		case ms < 0:
			p.add(file, fmt.Sprintf("$[%q].%s", key, field), "%d is before 1970", ms)
		case ms > now+maxFutureMs:
			p.add(file, fmt.Sprintf("$[%q].%s", key, field), "%s is more than a day after this host's clock (%s); fix the time, or this host's clock",
				formatMs(ms), formatMs(now))
		}
	}
	for _, n := range st.Paired {
		check(PairedFile, n.NodeID, "createdAtMs", n.CreatedAtMs)
		check(PairedFile, n.NodeID, "approvedAtMs", n.ApprovedAtMs)
	}
	for _, r := range st.Pending {
		check(PendingFile, r.RequestID, "ts", r.TS)
	}
	return p.err()
}

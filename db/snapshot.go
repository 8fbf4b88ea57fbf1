package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Snapshot is the whole pairing state from one consistent read, with
// tokens: what export writes.
type Snapshot struct {
	// Pending holds live requests, oldest first (ties by id).
	Pending []PendingRequest
	// Paired holds every paired node, oldest pairing first (ties by id),
	// with its token where pairing.key opens it.
	Paired []Node
	// Unsealable names the nodes whose token pairing.key cannot open (the
	// key was lost and replaced); their Token is empty.
	Unsealable []string
}

// TokenProblem says which tokens cannot be written, or nil when all can.
func (sn Snapshot) TokenProblem() error {
	if len(sn.Unsealable) == 0 {
		return nil
	}
	return errorf(CodeConflict,
		"the tokens of %d paired node(s) cannot be exported because pairing.key does not open them (it was replaced); they still verify. Restore the original pairing.key, or export with tokens redacted (--redact-tokens, ?redactTokens=true). Nodes: %s",
		len(sn.Unsealable), strings.Join(sn.Unsealable, ", "))
}

// Snapshot reads the whole state in one read transaction.
func (s *Store) Snapshot(ctx context.Context) (Snapshot, error) {
	var sn Snapshot
	err := s.bulkRead(ctx, "snapshot", func(tx *sql.Tx) error {
		var err error
		if sn.Pending, err = s.pending(ctx, tx, "ASC"); err != nil {
			return err
		}
		rows, err := s.r.query(ctx, tx, `SELECT `+nodeColumns+`, token_sealed FROM nodes ORDER BY created_at_ms, node_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		sn.Paired = []Node{}
		for rows.Next() {
			var sealed []byte
			n, err := scanNode(rows, &sealed)
			if err != nil {
				return err
			}
			if n.Token, err = s.seal.open(n.NodeID, sealed); err != nil {
				n.Token = ""
				sn.Unsealable = append(sn.Unsealable, n.NodeID)
			}
			sn.Paired = append(sn.Paired, n)
		}
		return rows.Err()
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return sn, nil
}

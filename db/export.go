package db

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pairgate/pairgate/config"
)

// LegacyExport is the store rendered as the two legacy files.
type LegacyExport struct {
	Paired, Pending           []byte
	PairedCount, PendingCount int
}

// LegacyFiles renders the store as the legacy files, from one consistent
// read. Without redact, tokens pairing.key cannot open make it fail and
// say which.
func (s *Store) LegacyFiles(ctx context.Context, redact bool) (LegacyExport, error) {
	sn, err := s.exportable(ctx, redact)
	if err != nil {
		return LegacyExport{}, err
	}
	return LegacyExport{
		Paired: LegacyPairedJSON(sn.Paired, redact), Pending: LegacyPendingJSON(sn.Pending),
		PairedCount: len(sn.Paired), PendingCount: len(sn.Pending),
	}, nil
}

// ExportSnapshot is the snapshot an export writes (WriteLegacyAnswer),
// read at once: without redact, tokens pairing.key cannot open make it
// fail, before anything is written.
func (s *Store) ExportSnapshot(ctx context.Context, redact bool) (Snapshot, error) {
	return s.exportable(ctx, redact)
}

// WriteLegacyAnswer writes REST's export answer, {"paired": …, "pending":
// …}, each member the legacy file as Export writes it, straight from the
// snapshot: no copy of either file is held (a trial's ten concurrent
// exports of 100,000 nodes took the server to 2.85 GB, each one's files
// held twice, as bytes and as their JSON encoding).
func WriteLegacyAnswer(w io.Writer, sn Snapshot, redact bool) error {
	b := bufio.NewWriterSize(w, 64<<10)
	b.WriteString(`{"paired":`)
	writeLegacyPaired(b, sn.Paired, redact)
	b.WriteString(`,"pending":`)
	writeLegacyPending(b, sn.Pending)
	b.WriteString("}\n")
	return b.Flush()
}

// exportable reads one snapshot and, unless tokens are to be redacted,
// refuses when pairing.key cannot open some of them.
func (s *Store) exportable(ctx context.Context, redact bool) (Snapshot, error) {
	sn, err := s.Snapshot(ctx)
	if err == nil && !redact {
		err = sn.TokenProblem()
	}
	return sn, err
}

// ExportReport says what Export wrote.
type ExportReport struct {
	Dir     string `json:"dir"`
	Paired  int    `json:"paired"`
	Pending int    `json:"pending"`
}

// Export writes paired.json and pending.json into dir, straight from one
// snapshot to disk. Each file is written whole to a temporary file in dir
// (0600), synced, renamed over the old one, and the directory synced:
// after a crash at any point each file is the old one or the new one.
func (s *Store) Export(ctx context.Context, dir string, redact bool) (ExportReport, error) {
	sn, err := s.exportable(ctx, redact)
	if err != nil {
		return ExportReport{}, err
	}
	return writeExport(dir, sn, redact)
}

// writeExport writes a snapshot's two files into dir.
func writeExport(dir string, sn Snapshot, redact bool) (ExportReport, error) {
	for name, write := range map[string]func(textWriter){
		PairedFile:  func(w textWriter) { writeLegacyPaired(w, sn.Paired, redact) },
		PendingFile: func(w textWriter) { writeLegacyPending(w, sn.Pending) },
	} {
		if err := writeFileAtomic(filepath.Join(dir, name), write); err != nil {
			return ExportReport{}, &Error{Code: CodeUnavailable, Message: "cannot write " + filepath.Join(dir, name), Err: err}
		}
	}
	return ExportReport{Dir: dir, Paired: len(sn.Paired), Pending: len(sn.Pending)}, nil
}

// CheckOverwrite refuses to write over legacy files in dir that hold a
// pairing this store would lose: a node the store lacks (OpenClaw's own
// files never imported, or a backup) unless the store removed it itself,
// or a node approved later in the file than in the store (the merge rule
// says the file's wins). It is nil when dir holds no legacy file.
func (s *Store) CheckOverwrite(ctx context.Context, dir string) error {
	st, found, err := ReadLegacyDir(dir)
	switch {
	case err != nil:
		return &Error{Code: CodeConflict, Message: fmt.Sprintf("%s holds legacy files pairgate cannot read, and an export would replace them: %v", dir, err)}
	case !found:
		return nil
	}
	// The store's approvals and removals, each read once: a file of
	// thousands of nodes is not thousands of lookups.
	approved, err := s.approvals(ctx)
	if err != nil {
		return classify(err, "read the pairings")
	}
	removed, err := s.removals(ctx, s.read)
	if err != nil {
		return classify(err, "read the outbox")
	}
	var lacked, newer []string
	for _, n := range st.Paired {
		at, paired := approved[n.NodeID]
		switch {
		case !paired:
			if gone, ok := removed[n.NodeID]; !ok || gone < n.ApprovedAtMs { // never removed here, or paired again since
				lacked = append(lacked, n.NodeID)
			}
		case n.ApprovedAtMs > at:
			newer = append(newer, n.NodeID)
		}
	}
	list := func(ids []string) string { return strings.Join(ids[:min(len(ids), 5)], ", ") }
	var problems []string
	if len(lacked) > 0 {
		problems = append(problems, fmt.Sprintf("%d paired node(s) this profile does not have (%s)", len(lacked), list(lacked)))
	}
	if len(newer) > 0 {
		problems = append(problems, fmt.Sprintf("%d node(s) approved there later than here (%s)", len(newer), list(newer)))
	}
	if len(problems) == 0 {
		return nil
	}
	return &Error{Code: CodeConflict, Message: fmt.Sprintf("%s holds %s, and an export would drop them: if they belong to this profile, import them first (pairgate import --from %s); if not, move the files away",
		filepath.Join(dir, PairedFile), strings.Join(problems, " and "), dir)}
}

// approvals maps each paired node to when it was approved.
func (s *Store) approvals(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.bulkRead(ctx, "read approvals", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT node_id, approved_at_ms FROM nodes`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var at int64
			if err := rows.Scan(&id, &at); err != nil {
				return err
			}
			out[id] = at
		}
		return rows.Err()
	})
	return out, err
}

// MirrorExport is Export for mirrorLegacyFiles: the nodes whose token
// pairing.key cannot open (after new-key) are left out, and named in
// unsealable, instead of refusing the whole export (the mirror then
// failed for good, and new approvals never reached the files). An empty
// token would make the files ones no import takes.
func (s *Store) MirrorExport(ctx context.Context, dir string) (rep ExportReport, unsealable []string, err error) {
	sn, err := s.Snapshot(ctx)
	if err != nil {
		return ExportReport{}, nil, err
	}
	if len(sn.Unsealable) > 0 {
		// A set: after new-key every node may be unsealable, and a scan
		// of the list for each node took 62 s at 100,000 (35 ms so).
		gone := make(map[string]bool, len(sn.Unsealable))
		for _, id := range sn.Unsealable {
			gone[id] = true
		}
		sn.Paired = slices.DeleteFunc(sn.Paired, func(n Node) bool { return gone[n.NodeID] })
	}
	rep, err = writeExport(dir, sn, false)
	return rep, sn.Unsealable, err
}

func writeFileAtomic(path string, write func(textWriter)) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removes a failed attempt
	w := bufio.NewWriterSize(tmp, 256<<10)
	write(w)
	err = w.Flush()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return config.SyncDir(filepath.Dir(path))
}

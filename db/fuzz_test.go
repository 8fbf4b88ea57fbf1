package db

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadLegacy: any bytes either read as legacy state that the writer
// turns into files which read back to the same state, or are refused with
// a CodeInvalid report that names a file. Never a panic.
func FuzzReadLegacy(f *testing.F) {
	for _, dir := range snapshots(f) {
		f.Add(readFile(f, filepath.Join(dir, PairedFile)), readFile(f, filepath.Join(dir, PendingFile)))
	}
	f.Add([]byte(laterPaired), []byte(laterPending))
	f.Add([]byte(`{"a":{"nodeId":"a","nodeId":"a"}}`), []byte(`[]`))
	f.Add([]byte("{\"a\":{\"nodeId\":\"a\",\"token\":\"\\u2028<\\u0001\",\"createdAtMs\":1,\"approvedAtMs\":2,\"x\":[{},[],null]}}"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, paired, pending []byte) {
		st, err := ReadLegacy(paired, pending)
		if err != nil {
			msg := err.Error()
			if ErrorCode(err) != CodeInvalid || !(strings.Contains(msg, "paired.json: ") || strings.Contains(msg, "pending.json: ")) {
				t.Fatalf("refusal without a clear report: %v", err)
			}
			return
		}
		p1, q1 := LegacyPairedJSON(st.Paired, false), LegacyPendingJSON(st.Pending)
		st2, err := ReadLegacy(p1, q1)
		if err != nil {
			t.Fatalf("the writer's output does not read back: %v\n%s\n%s", err, p1, q1)
		}
		if p2, q2 := LegacyPairedJSON(st2.Paired, false), LegacyPendingJSON(st2.Pending); !bytes.Equal(p1, p2) || !bytes.Equal(q1, q2) {
			t.Fatalf("write → read → write is not a fixed point:\n%s\n%s", p1, p2)
		}
	})
}

package db

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db/fixture"
)

// pinnedAt is a clock just after the newest pending request of a snapshot,
// so that none has expired (the fixtures were recorded minutes apart).
func pinnedAt(t testing.TB, st LegacyState) *testClock {
	var newest int64 = 1795626734109
	for _, r := range st.Pending {
		newest = max(newest, r.TS)
	}
	return &testClock{t: time.UnixMilli(newest + 1000)}
}

func importDir(t testing.TB, s *Store, dir, mode string) ImportReport {
	t.Helper()
	st, err := ReadLegacy(readFile(t, filepath.Join(dir, PairedFile)), readFile(t, filepath.Join(dir, PendingFile)))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Import(ctx, st, mode, false, Origin{Actor: "import"})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestSnapshotsRoundTripThroughTheStore(t *testing.T) {
	for _, dir := range snapshots(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			paired, pending := readFile(t, filepath.Join(dir, PairedFile)), readFile(t, filepath.Join(dir, PendingFile))
			st, _ := ReadLegacy(paired, pending)
			s := openStore(t, pinnedAt(t, st))
			rep := importDir(t, s, dir, ImportMerge)
			if rep.PairedAdded != len(st.Paired) || rep.PendingAdded != len(st.Pending) {
				t.Fatalf("report %+v", rep)
			}
			out := t.TempDir()
			if _, err := s.Export(ctx, out, false); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string][]byte{PairedFile: paired, PendingFile: pending} {
				got := readFile(t, filepath.Join(out, name))
				if !bytes.Equal(got, want) {
					t.Fatalf("%s differs after import → export:\n got %q\nwant %q", name, got, want)
				}
				if st, _ := os.Stat(filepath.Join(out, name)); st.Mode().Perm() != 0o600 {
					t.Fatalf("%s mode %v", name, st.Mode().Perm())
				}
			}
			// Imported tokens verify.
			for _, n := range st.Paired {
				if v, _ := s.Verify(ctx, n.NodeID, n.Token); !v.OK {
					t.Fatalf("imported token of %s does not verify", n.NodeID)
				}
			}
			// import → export → import is a fixed point.
			again := importDir(t, s, out, ImportMerge)
			if again.Changed || again.PairedKept != len(st.Paired) || again.PendingUnchanged != len(st.Pending) {
				t.Fatalf("second import %+v, want nothing changed", again)
			}
		})
	}
}

// A file as a later OpenClaw release (2026.6.x) writes it, built from the
// spec's field lists: revision after requestId, no isRepair, permissions,
// 43-character tokens, fields pairgate does not know.
const laterPending = `{
  "req-1": {
    "requestId": "req-1",
    "revision": 3,
    "nodeId": "node-new",
    "displayName": "Phone",
    "permissions": {
      "camera": true
    },
    "silent": false,
    "clientId": "openclaw-android",
    "clientMode": "node",
    "ts": 1795626734000
  },
  "req-2": {
    "requestId": "req-2",
    "nodeId": "node-hex",
    "ts": 1795626734001
  }
}`

const laterPaired = `{
  "node-hex": {
    "nodeId": "node-hex",
    "token": "0123456789abcdef0123456789abcdef",
    "createdAtMs": 1795626000000,
    "approvedAtMs": 1795626000000
  },
  "node-b64": {
    "nodeId": "node-b64",
    "token": "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE",
    "displayName": "Desk",
    "permissions": {
      "screen": false
    },
    "createdAtMs": 1795626100000,
    "approvedAtMs": 1795626200000,
    "bins": [
      "git",
      "node"
    ],
    "lastSeenAtMs": 1795626300000,
    "lastSeenReason": "heartbeat",
    "refreshedAtMs": 1795626300001,
    "lastConnectedAtMs": 1795626250000
  }
}`

func TestLaterReleasesImport(t *testing.T) {
	st, err := ReadLegacy([]byte(laterPaired), []byte(laterPending))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`paired.json: $["node-b64"].lastSeenAtMs`, `paired.json: $["node-b64"].lastSeenReason`, `paired.json: $["node-b64"].refreshedAtMs`,
		`pending.json: $["req-1"].revision`, `pending.json: $["req-1"].clientId`, `pending.json: $["req-1"].clientMode`,
	}
	if !reflect.DeepEqual(st.Unknown, want) {
		t.Fatalf("unknown fields %v\nwant %v", st.Unknown, want)
	}
	s := openStore(t, &testClock{t: time.UnixMilli(1795626734100)})
	rep, err := s.Import(ctx, st, ImportMerge, false, Origin{Actor: "import"})
	if err != nil || rep.PairedAdded != 2 || rep.PendingAdded != 2 || len(rep.UnknownFields) != 6 {
		t.Fatalf("report %+v %v", rep, err)
	}
	for _, n := range st.Paired {
		if v, _ := s.Verify(ctx, n.NodeID, n.Token); !v.OK {
			t.Fatalf("%s token (%d chars) does not verify", n.NodeID, len(n.Token))
		}
	}
	// Without isRepair, a request from a paired node is a repair.
	status, _ := s.RequestStatus(ctx, "req-2")
	if !status.Request.IsRepair {
		t.Fatal("req-2 is for a paired node: a repair")
	}
	// Unknown fields come back out.
	files, err := s.LegacyFiles(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"lastSeenReason": "heartbeat"`, `"refreshedAtMs": 1795626300001`, `"revision": 3`, `"clientMode": "node"`,
		`"permissions": {` + "\n      \"screen\": false\n    }"} {
		if !bytes.Contains(files.Paired, []byte(frag)) && !bytes.Contains(files.Pending, []byte(frag)) {
			t.Errorf("export lost %s", frag)
		}
	}
	// And the export imports again as a fixed point.
	st2, err := ReadLegacy(files.Paired, files.Pending)
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := s.Import(ctx, st2, ImportMerge, false, Origin{Actor: "import"}); rep.Changed {
		t.Fatalf("re-import changed things: %+v", rep)
	}
}

func TestMergeRules(t *testing.T) {
	clk := &testClock{t: time.UnixMilli(1795626734100)}
	s := openStore(t, clk)
	tokenA := pairNode(t, s, "a") // approved at the clock
	live := mustRequest(t, s, RequestInput{NodeID: "busy"}).Request.RequestID
	now := clk.Now().UnixMilli()
	file := func(approvedA int64) LegacyState {
		st, err := ReadLegacy([]byte(`{
  "a": {"nodeId": "a", "token": "file-token-a", "createdAtMs": 1, "approvedAtMs": `+itoa(approvedA)+`},
  "b": {"nodeId": "b", "token": "file-token-b", "createdAtMs": 1, "approvedAtMs": 1}
}`), []byte(`{
  "old": {"requestId": "old", "nodeId": "x", "isRepair": false, "ts": `+itoa(now-6*60_000)+`},
  "`+live+`": {"requestId": "`+live+`", "nodeId": "busy", "isRepair": false, "ts": `+itoa(now)+`},
  "other-for-busy": {"requestId": "other-for-busy", "nodeId": "busy", "isRepair": false, "ts": `+itoa(now)+`},
  "new": {"requestId": "new", "nodeId": "y", "isRepair": false, "ts": `+itoa(now)+`}
}`))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// The store's pairing of a is as new: it stays; b is added.
	rep, err := s.Import(ctx, file(now), ImportMerge, false, Origin{Actor: "import"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PairedAdded != 1 || rep.PairedKept != 1 || rep.PendingAdded != 1 || rep.SkippedExpired != 1 ||
		rep.PendingUnchanged != 1 || rep.SkippedNodePending != 1 {
		t.Fatalf("report %+v", rep)
	}
	if v, _ := s.Verify(ctx, "a", tokenA); !v.OK {
		t.Fatal("a tie must keep the store's token")
	}
	// A later approval in the file wins.
	rep, _ = s.Import(ctx, file(now+1), ImportMerge, false, Origin{Actor: "import"})
	if rep.PairedReplaced != 1 {
		t.Fatalf("report %+v", rep)
	}
	if v, _ := s.Verify(ctx, "a", "file-token-a"); !v.OK {
		t.Fatal("the later pairing's token must verify")
	}
	// replace: exactly the files; dry run first changes nothing.
	pairNode(t, s, "extra")
	stray := mustRequest(t, s, RequestInput{NodeID: "stray"}).Request.RequestID
	before := allEvents(t, s)
	dry, _ := s.Import(ctx, file(now+1), ImportReplace, true, Origin{Actor: "import"})
	if dry.PairedRemoved != 1 || dry.PendingRemoved != 1 || !dry.Changed || len(allEvents(t, s)) != len(before) {
		t.Fatalf("dry run %+v changed state", dry)
	}
	if _, err := s.Node(ctx, "extra"); err != nil {
		t.Fatal("dry run removed a node")
	}
	rep, _ = s.Import(ctx, file(now+1), ImportReplace, false, Origin{Actor: "import"})
	if !reflect.DeepEqual(rep, dry.withDryRun(false)) {
		t.Fatalf("real import %+v differs from its dry run %+v", rep, dry)
	}
	nodes, _ := s.Nodes(ctx)
	if len(nodes) != 2 {
		t.Fatalf("after replace: %d nodes, want the file's 2", len(nodes))
	}
	// The store's request the files lack is closed, and its end told:
	// deleted silently, a consumer told of it waited for its end forever.
	if st, err := s.RequestStatus(ctx, stray); err != nil || st.Status != StatusExpired {
		t.Fatalf("after replace the stray request is %+v, %v; want expired", st, err)
	}
	// The audit event records the files' digests and the counts.
	evs := allEvents(t, s)
	last := evs[len(evs)-1]
	if prev := evs[len(evs)-2]; prev.Name != EventResolved || !strings.Contains(string(prev.Payload), `"requestId":"`+stray+`"`) || !strings.Contains(string(prev.Payload), `"decision":"expired"`) {
		t.Fatalf("the stray request's end: %s %s", prev.Name, prev.Payload)
	}
	if last.Name != EventImported || !strings.Contains(string(last.Payload), `"paired.json":"`) || last.Actor != "import" {
		t.Fatalf("last event %s %s", last.Name, last.Payload)
	}
}

func (r ImportReport) withDryRun(d bool) ImportReport {
	r.DryRun = d
	return r
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestBadImportChangesNothing(t *testing.T) {
	s := openStore(t, newClock())
	pairNode(t, s, "keep")
	before, _ := s.LegacyFiles(ctx, false)
	for name, files := range map[string][2]string{
		"garbage":        {"nope", "{}"},
		"one bad record": {`{"ok":{"nodeId":"ok","token":"t","createdAtMs":1,"approvedAtMs":1},"bad":{"nodeId":"bad"}}`, "{}"},
		"bad pending":    {"{}", `{"r":{"requestId":"r"}}`},
	} {
		st, err := ReadLegacy([]byte(files[0]), []byte(files[1]))
		if err == nil {
			if _, err = s.Import(ctx, st, ImportReplace, false, byCLI); err == nil {
				t.Fatalf("%s: imported", name)
			}
		}
		after, _ := s.LegacyFiles(ctx, false)
		if !bytes.Equal(before.Paired, after.Paired) || !bytes.Equal(before.Pending, after.Pending) {
			t.Fatalf("%s: the store changed", name)
		}
	}
	// A 200 MB file is refused by size, before parsing.
	huge := make([]byte, 200<<20)
	_, err := ReadLegacy(huge, nil)
	if err == nil || !strings.Contains(err.Error(), "the file is 209715200 bytes; the limit is 134217728") {
		t.Fatalf("200 MB file: %v", err)
	}
}

func TestExportRefusesUnsealableTokensUnlessRedacted(t *testing.T) {
	s := storeWithLostKey(t, "n1")
	out := t.TempDir()
	if _, err := s.Export(ctx, out, false); err == nil || !strings.Contains(err.Error(), "n1") {
		t.Fatalf("export with a lost key = %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("a refused export wrote %v", entries)
	}
	if _, err := s.Export(ctx, out, true); err != nil {
		t.Fatal(err)
	}
	if b := readFile(t, filepath.Join(out, PairedFile)); !bytes.Contains(b, []byte(`"token": ""`)) {
		t.Fatalf("redacted export %s", b)
	}
}

// A migration trial imported OpenClaw's snapshots out of order: the
// repair request of 03 stayed pending after 04's later approval of its
// node (or, 04 first, 03 brought it back), and approving it replaced the
// token the node holds. A request older than its node's approval is
// decided since: it is skipped, or closed when the approval comes later.
func TestImportDropsRequestsOlderThanTheirNodesApproval(t *testing.T) {
	snap := func(name string) string { return fixture.Path(t, "snapshots", name) }
	const node, repair = "88a48acd09bad5544c01dfdcb514b766021b0cb29f92866f2538523815431078", "10356905-ca97-449d-aac4-5fb4b23ca1a5"
	clock := func() *testClock { return &testClock{t: time.UnixMilli(1795626834276 + 1000)} }
	token04 := func(t *testing.T) string {
		st, err := ReadLegacy(readFile(t, filepath.Join(snap("04-after-repair-approve"), PairedFile)), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st.Paired[0].Token
	}(t)
	check := func(t *testing.T, s *Store) {
		t.Helper()
		rs, err := s.RequestStatus(ctx, repair)
		if err == nil && rs.Status == StatusPending {
			t.Fatalf("the repair request 04 approved is pending: %+v", rs)
		}
		if v, _ := s.Verify(ctx, node, token04); !v.OK {
			t.Fatal("the token of 04's approval does not verify")
		}
	}
	t.Run("03 then 04", func(t *testing.T) {
		s := openStore(t, clock())
		importDir(t, s, snap("03-after-node-connect-and-rename"), ImportMerge)
		rep := importDir(t, s, snap("04-after-repair-approve"), ImportMerge)
		if rep.PairedReplaced != 1 || rep.PendingClosed != 1 || !rep.Changed {
			t.Fatalf("report %+v; want the node replaced and its older request closed", rep)
		}
		check(t, s)
		if rs, _ := s.RequestStatus(ctx, repair); rs.Status != StatusExpired {
			t.Fatalf("the closed request is %q, want expired", rs.Status)
		}
	})
	t.Run("04 then 03", func(t *testing.T) {
		s := openStore(t, clock())
		importDir(t, s, snap("04-after-repair-approve"), ImportMerge)
		rep := importDir(t, s, snap("03-after-node-connect-and-rename"), ImportMerge)
		if rep.SkippedDecided != 1 || rep.PairedKept != 1 {
			t.Fatalf("report %+v; want the older request skipped as decided", rep)
		}
		check(t, s)
		if _, err := s.RequestStatus(ctx, repair); ErrorCode(err) != CodeNotFound {
			t.Fatalf("the skipped request was stored: %v", err)
		}
	})
}

// An operator trial imported a pairing "approved" in 2100: it won every
// later merge over the store's real approvals, and a request from then
// never expired. Times before 1970 or over a day ahead are refused.
func TestImportRefusesTimesOutOfRange(t *testing.T) {
	clk := &testClock{t: time.UnixMilli(1795626734100)}
	s := openStore(t, clk)
	now := clk.Now().UnixMilli()
	for _, tc := range []struct{ paired, pending, want string }{
		{`{"a": {"nodeId": "a", "token": "t", "createdAtMs": 1, "approvedAtMs": 4102444800000}}`, `{}`,
			`paired.json: $["a"].approvedAtMs: 2100-01-01T00:00:00Z is more than a day after this host's clock`},
		{`{"a": {"nodeId": "a", "token": "t", "createdAtMs": -5, "approvedAtMs": 1}}`, `{}`,
			`paired.json: $["a"].createdAtMs: -5 is before 1970`},
		{`{}`, `{"r": {"requestId": "r", "nodeId": "x", "isRepair": false, "ts": ` + itoa(now+2*24*3600_000) + `}}`,
			`pending.json: $["r"].ts: `},
	} {
		st, err := ReadLegacy([]byte(tc.paired), []byte(tc.pending))
		if err != nil {
			t.Fatal(err)
		}
		before := allEvents(t, s)
		_, err = s.Import(ctx, st, ImportMerge, false, Origin{Actor: "import"})
		if ErrorCode(err) != CodeInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("import of %s %s = %v; want a refusal saying %q", tc.paired, tc.pending, err, tc.want)
		}
		if len(allEvents(t, s)) != len(before) {
			t.Fatal("a refused import wrote an event")
		}
	}
	// An hour ahead (another host's clock) is taken.
	st, _ := ReadLegacy([]byte(`{"a": {"nodeId": "a", "token": "t", "createdAtMs": 1, "approvedAtMs": `+itoa(now+3600_000)+`}}`), nil)
	if rep, err := s.Import(ctx, st, ImportMerge, false, Origin{Actor: "import"}); err != nil || rep.PairedAdded != 1 {
		t.Fatalf("import an hour ahead = %+v, %v", rep, err)
	}
}

// Export (and the mirror's first export) refuse to write over files that
// hold a pairing the store would lose: one it lacks, or one approved
// there later. A node the store removed itself is not one of them (a
// trial: the refusal's advice, import them, brought a removed node back
// with its revoked token).
func TestCheckOverwrite(t *testing.T) {
	s := openStore(t, newClock())
	pairNode(t, s, "kept")
	pairNode(t, s, "gone")
	dir := t.TempDir()
	if _, err := s.Export(ctx, dir, false); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckOverwrite(ctx, dir); err != nil {
		t.Fatalf("over its own export: %v", err)
	}
	if _, err := s.Remove(ctx, "gone", Origin{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckOverwrite(ctx, dir); err != nil {
		t.Fatalf("over a file holding a node this store removed: %v", err)
	}
	kept, _ := s.Node(ctx, "kept")
	write := func(paired string) {
		t.Helper()
		os.WriteFile(filepath.Join(dir, PairedFile), []byte(paired), 0o600)
	}
	write(`{"other": {"nodeId": "other", "token": "t", "createdAtMs": 1, "approvedAtMs": 1}}`)
	if err := s.CheckOverwrite(ctx, dir); ErrorCode(err) != CodeConflict || !strings.Contains(err.Error(), "1 paired node(s) this profile does not have (other)") {
		t.Fatalf("over a node the store lacks: %v", err)
	}
	write(`{"kept": {"nodeId": "kept", "token": "newer", "createdAtMs": 1, "approvedAtMs": ` + itoa(kept.ApprovedAtMs+1) + `}}`)
	if err := s.CheckOverwrite(ctx, dir); ErrorCode(err) != CodeConflict || !strings.Contains(err.Error(), "1 node(s) approved there later than here (kept)") {
		t.Fatalf("over a later approval: %v", err)
	}
	write(`{"kept": {"nodeId": "kept", "token": "older", "createdAtMs": 1, "approvedAtMs": ` + itoa(kept.ApprovedAtMs-1) + `}}`)
	if err := s.CheckOverwrite(ctx, dir); err != nil {
		t.Fatalf("over an older approval: %v", err)
	}
}

// After new-key the mirror's export failed on every change (the lost
// key's tokens cannot be exported), and approvals made since never
// reached the files. MirrorExport leaves those nodes out and names them.
func TestMirrorExportLeavesOutUnsealableTokens(t *testing.T) {
	s := storeWithLostKey(t, "old")
	newToken := pairNode(t, s, "new")
	out := t.TempDir()
	rep, unsealable, err := s.MirrorExport(ctx, out)
	if err != nil || rep.Paired != 1 || !slices.Equal(unsealable, []string{"old"}) {
		t.Fatalf("MirrorExport = %+v, %v, %v", rep, unsealable, err)
	}
	st, _, err := ReadLegacyDir(out)
	if err != nil || len(st.Paired) != 1 || st.Paired[0].NodeID != "new" || st.Paired[0].Token != newToken {
		t.Fatalf("mirrored files: %+v, %v", st.Paired, err)
	}
	if err := s.CheckOverwrite(ctx, out); err != nil {
		t.Fatalf("the next start's check over the mirrored files: %v", err)
	}
}

// A migration trial imported 10,000 pending requests under maxPending
// 1,000: every new request was then refused until they expired. An
// import that would leave more live requests than maxPending is refused.
func TestImportKeepsWithinMaxPending(t *testing.T) {
	clk := newClock()
	opts := testOptions(t.TempDir(), clk)
	opts.MaxPending = 2
	s := openWith(t, opts)
	now := clk.Now().UnixMilli()
	file := func(n int) LegacyState {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"r%d": {"requestId": "r%d", "nodeId": "n%d", "isRepair": false, "ts": %d}`, i, i, i, now)
		}
		b.WriteString("}")
		st, err := ReadLegacy(nil, []byte(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// Refused before the import's work (checkPendingFirst: an outside
	// trial waited 13–15 s for the refusal after 100,000 nodes).
	if _, err := s.Import(ctx, file(3), ImportMerge, false, Origin{Actor: "import"}); ErrorCode(err) != CodeInvalid || !strings.Contains(err.Error(), "leave at least 3 live pending requests, and this profile holds at most 2 (maxPending)") {
		t.Fatalf("import of 3 under maxPending 2 = %v", err)
	}
	// Requests the import would skip do not count early: two of these
	// three are older than their nodes' approvals in the same files.
	paired := fmt.Sprintf(`{"n0": {"nodeId": "n0", "token": "t0", "createdAtMs": %d, "approvedAtMs": %d}, "n1": {"nodeId": "n1", "token": "t1", "createdAtMs": %d, "approvedAtMs": %d}}`, now, now+1, now, now+1)
	st := file(3)
	withPaired, err := ReadLegacy([]byte(paired), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Paired = withPaired.Paired
	if rep, err := s.Import(ctx, st, ImportMerge, true, Origin{Actor: "import"}); err != nil || rep.PendingAdded != 1 || rep.SkippedDecided != 2 {
		t.Fatalf("dry import of 3 requests, 2 decided since = %+v, %v", rep, err)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("a refused import left %d pending", len(p))
	}
	if rep, err := s.Import(ctx, file(2), ImportMerge, false, Origin{Actor: "import"}); err != nil || rep.PendingAdded != 2 {
		t.Fatalf("import of 2 = %+v, %v", rep, err)
	}
}

// A trial exported a node, removed it, and merged the export back: the
// node came back and its revoked token verified. A merge leaves out a
// pairing the profile removed after that approval; one approved again
// since (in OpenClaw) is taken. A replace's removals are removal events,
// so the export's overwrite check knows them.
func TestImportRespectsRemovals(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	token := pairNode(t, s, "r1")
	pairNode(t, s, "r2")
	backup := t.TempDir()
	if _, err := s.Export(ctx, backup, false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := s.Remove(ctx, "r1", Origin{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if rep := importDir(t, s, backup, ImportMerge); rep.SkippedRemoved != 1 || rep.PairedAdded != 0 {
		t.Fatalf("merge of the backup after the removal: %+v", rep)
	}
	if v, _ := s.Verify(ctx, "r1", token); v.OK {
		t.Fatal("the removed node's token verifies again")
	}
	// Approved again in OpenClaw after the removal: merged.
	clk.Advance(time.Second)
	again := readFile(t, filepath.Join(backup, PairedFile))
	st, err := ReadLegacy(again, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.Paired {
		st.Paired[i].ApprovedAtMs = clk.Now().UnixMilli()
	}
	if rep, err := s.Import(ctx, st, ImportMerge, false, Origin{Actor: "import"}); err != nil || rep.PairedAdded != 1 {
		t.Fatalf("merge of a pairing made after the removal: %+v %v", rep, err)
	}
	// A replace that ends r2's pairing records the removal.
	clk.Advance(time.Second)
	only := t.TempDir()
	os.WriteFile(filepath.Join(only, PairedFile), []byte(`{}`), 0o600)
	os.WriteFile(filepath.Join(only, PendingFile), []byte(`{}`), 0o600)
	if rep := importDir(t, s, only, ImportReplace); rep.PairedRemoved != 2 {
		t.Fatalf("replace: %+v", rep)
	}
	var removals int
	for _, e := range allEvents(t, s) {
		if e.Name == EventResolved && strings.Contains(string(e.Payload), `"decision":"removed"`) && e.Actor == "import" {
			removals++
		}
	}
	if removals != 2 {
		t.Fatalf("%d removal events from the replace, want 2", removals)
	}
	if err := s.CheckOverwrite(ctx, backup); err != nil {
		t.Fatalf("export over the backup after the replace removed its nodes: %v", err)
	}
}

// A pending request an import adds is announced as a node's own request
// is (node.pair.requested, before the import's own event): a consumer
// approving from events heard only of its expiry.
func TestImportedRequestsAreAnnounced(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk)
	now := clk.Now().UnixMilli()
	st := LegacyState{Pending: []PendingRequest{{RequestID: "0b6f2c1e-5d7a-4c3b-9a51-2f0d8e6b4c71", NodeID: "lab-imported", TS: now - 500}}}
	rep, err := s.Import(ctx, st, ImportMerge, false, Origin{Actor: "import"})
	if err != nil || rep.PendingAdded != 1 {
		t.Fatalf("import: %+v %v", rep, err)
	}
	evs := allEvents(t, s)
	if len(evs) != 2 || evs[0].Name != EventRequested || evs[1].Name != EventImported ||
		!strings.Contains(string(evs[0].Payload), `"requestId":"0b6f2c1e-5d7a-4c3b-9a51-2f0d8e6b4c71"`) ||
		!strings.Contains(string(evs[0].Payload), `"nodeId":"lab-imported"`) || evs[0].Actor != "import" {
		for _, e := range evs {
			t.Logf("%d %s %s", e.Seq, e.Name, e.Payload)
		}
		t.Fatal("the imported request is not announced before the import's event")
	}
	// Importing the same files again adds nothing, and announces nothing.
	if rep, err := s.Import(ctx, st, ImportMerge, false, Origin{Actor: "import"}); err != nil || rep.PendingAdded != 0 {
		t.Fatalf("again: %+v %v", rep, err)
	}
	if evs := allEvents(t, s); len(evs) != 3 || evs[2].Name != EventImported {
		t.Fatalf("the second import wrote %d events", len(evs)-2)
	}
}

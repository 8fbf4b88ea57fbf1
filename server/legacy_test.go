package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/fixture"
)

func snapshot05(t *testing.T, file string) []byte {
	return fixture.Read(t, "snapshots", "05-after-expiry-and-new-requests", file)
}

func TestRESTImportExport(t *testing.T) {
	ts := startServer(t)
	paired, pending := snapshot05(t, "paired.json"), snapshot05(t, "pending.json")
	// The recorded requests are 'now' for this test.
	ts.clock.Pin(time.UnixMilli(1795627040011 + 1000))
	body := `{"paired":` + string(paired) + `,"pending":` + string(pending) + `}`

	var dry db.ImportReport
	ts.mustAPI(t, 200, "POST", base+"/import?dryRun=true", body, &dry)
	if !dry.DryRun || dry.PairedAdded != 1 || dry.PendingAdded != 2 {
		t.Fatalf("dry run %+v", dry)
	}
	var nodes db.NodeList
	ts.mustAPI(t, 200, "GET", base+"/nodes", "", &nodes)
	if len(nodes.Nodes) != 0 {
		t.Fatal("a dry run imported")
	}
	var rep db.ImportReport
	ts.mustAPI(t, 200, "POST", base+"/import", body, &rep)
	if rep.DryRun || rep.PairedAdded != 1 || rep.PendingAdded != 2 || rep.SHA256["paired.json"] == "" {
		t.Fatalf("import %+v", rep)
	}
	var out map[string]json.RawMessage
	ts.mustAPI(t, 200, "GET", base+"/export", "", &out)
	var wantPaired, gotPaired any
	json.Unmarshal(paired, &wantPaired)
	json.Unmarshal(out["paired"], &gotPaired)
	if !jsonEqual(wantPaired, gotPaired) {
		t.Fatalf("export %s\nwant %s", out["paired"], paired)
	}
	ts.mustAPI(t, 200, "GET", base+"/export?redactTokens=true", "", &out)
	var redacted map[string]struct{ Token *string }
	if err := json.Unmarshal(out["paired"], &redacted); err != nil || len(redacted) != 1 {
		t.Fatalf("redacted export %s: %v", out["paired"], err)
	}
	for id, n := range redacted {
		if n.Token == nil || *n.Token != "" {
			t.Fatalf("redacted export: node %s has token %v\n%s", id, n.Token, out["paired"])
		}
	}
	// Each member is the legacy file, byte for byte, as the CLI's export
	// writes it.
	r := ts.api(t, "GET", base+"/export", testToken, "")
	st := ts.byName["default"].Store
	sn, err := st.ExportSnapshot(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"paired":` + string(db.LegacyPairedJSON(sn.Paired, false)) + `,"pending":` + string(db.LegacyPendingJSON(sn.Pending)) + "}\n"
	if r.status != 200 || string(r.body) != want || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("export = %d %s\n%s\nwant\n%s", r.status, r.header.Get("Content-Type"), r.body, want)
	}
	// A bad file: 400, every problem listed in details, nothing changed.
	r = ts.api(t, "POST", base+"/import?mode=replace", testToken, `{"paired":{"x":{"nodeId":"y"}},"pending":[]}`)
	var e struct {
		Error struct {
			Details struct{ Problems []string } `json:"details"`
		} `json:"error"`
	}
	json.Unmarshal(r.body, &e)
	if r.status != 400 || len(e.Error.Details.Problems) < 3 {
		t.Fatalf("bad import = %d %s", r.status, r.body)
	}
	ts.mustAPI(t, 200, "GET", base+"/nodes", "", &nodes)
	if len(nodes.Nodes) != 1 {
		t.Fatal("a refused import changed the store")
	}
	for body, want := range map[string]string{
		`{"paired":{},"other":{}}`:   `unknown member "other"`,
		`{"paired":{},"paired":{}}`:  `duplicate key "paired"`,
		`{"paired":{}} []`:           "trailing data after the JSON value",
		`["paired"]`:                 "want {",
		`{"pending":{"r":{"ts":1}}}`: `pending.json: $["r"].requestId: missing`,
		"{\"paired\":\n{\"a\":1,}}":  `$["paired"]: malformed JSON at line 2, column 8: invalid character '}' looking for beginning of object key string`,
		// Deeper than the json package's own limit: refused in the words
		// of every other JSON refusal, with the path.
		`{"paired":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`:  `$["paired"][0]`,
		`{"` + strings.Repeat("x", 5000) + `":{}}`:                                    `unknown member "xxxxx`,
		`{"paired":{}, "pending":{"r":{"requestId":"r","nodeId":"a}\"]","ts":1}} , }`: "invalid JSON body: $: malformed JSON",
	} {
		if r := ts.api(t, "POST", base+"/import", testToken, body); r.status != 400 || !strings.Contains(r.errorMessage(), want) {
			t.Fatalf("import %s = %d %s; want 400 with %q", body, r.status, r.body, want)
		}
	}
	// A long member name is shown by its start and length, not whole.
	if r := ts.api(t, "POST", base+"/import", testToken, `{"`+strings.Repeat("x", 5000)+`":{}}`); len(r.body) > 500 || !strings.Contains(r.errorMessage(), "(5002 bytes)") {
		t.Fatalf("long member name = %d %s", r.status, r.body)
	}
	// Brackets and quotes inside strings do not end a member early.
	member := `{"r":{"requestId":"r","nodeId":"a}\"]{[","ts":1}}`
	r = ts.api(t, "POST", base+"/import?dryRun=true", testToken, ` { "pending" : `+member+` , "paired" : {} } `)
	var report db.ImportReport
	r.decode(t, &report)
	if sum := sha256.Sum256([]byte(member)); r.status != 200 || report.SHA256["pending.json"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("import with brackets in a string = %d %s", r.status, r.body)
	}
	if r := ts.api(t, "POST", base+"/import?mode=both", testToken, `{"paired":{}}`); r.status != 400 || !strings.Contains(r.errorMessage(), "mode") {
		t.Fatalf("bad mode = %d %s", r.status, r.body)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestAutoImportAndMirror(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) {
		// Legacy files already in the state directory of a new profile.
		nodes := s.cfg.Profiles[0].NodesDir()
		os.MkdirAll(nodes, 0o700)
		for _, f := range []string{"paired.json", "pending.json"} {
			if err := os.WriteFile(filepath.Join(nodes, f), snapshot05(t, f), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s.cfg.Profiles[0].MirrorLegacyFiles = true
	})
	if !strings.Contains(ts.log.String(), "imported legacy files into the new database") {
		t.Fatalf("no auto-import in the log:\n%s", ts.log)
	}
	var nodes db.NodeList
	ts.mustAPI(t, 200, "GET", base+"/nodes", "", &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].DisplayName != "Den iPad" {
		t.Fatalf("auto-imported nodes %+v", nodes)
	}
	// The mirror rewrites paired.json after a change.
	ts.mustAPI(t, 200, "PATCH", base+"/nodes/88a48acd09bad5544c01dfdcb514b766021b0cb29f92866f2538523815431078", `{"displayName":"Hall iPad"}`, nil)
	path := filepath.Join(ts.byName["default"].Config.NodesDir(), "paired.json")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(`"displayName": "Hall iPad"`)) && bytes.Contains(b, []byte(`"token": "65b19ff8094f4a2895a030b305e088aa"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("paired.json not mirrored:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Finding 9 of issue #10: an import that removes or re-keys a node ends
// its live sessions, whether it comes over REST or from another process
// (`pairgate import` beside the server); unchanged nodes stay connected.
func TestImportClosesSessionsOfChangedNodes(t *testing.T) {
	ts := startServer(t)
	connect := func() (device, *wsClient, string) {
		d := newDevice()
		var req db.RequestResult
		ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"`+d.id+`"}`, &req)
		var a db.Approval
		ts.mustAPI(t, 200, "POST", base+"/requests/"+req.Request.RequestID+"/approve", "", &a)
		c, hello := ts.node(t, d, a.Node.Token)
		if !hello.OK {
			t.Fatalf("paired connect: %+v", hello.Error)
		}
		return d, c, a.Node.Token
	}
	removed, removedConn, _ := connect()
	rekeyed, rekeyedConn, _ := connect()
	kept, keptConn, keptToken := connect()

	var files struct{ Paired map[string]map[string]any }
	ts.mustAPI(t, 200, "GET", base+"/export", "", &files)
	delete(files.Paired, removed.id)
	files.Paired[rekeyed.id]["token"] = db.NewToken()
	body, _ := json.Marshal(map[string]any{"paired": files.Paired})
	// replace without "pending" would have emptied it: refused (a trial's
	// {"pending":{}} removed every pairing).
	if r := ts.api(t, "POST", base+"/import?mode=replace", testToken, string(body)); r.status != 400 || !strings.Contains(r.errorMessage(), `it has no "pending"`) {
		t.Fatalf("replace without pending = %d %s", r.status, r.body)
	}
	body, _ = json.Marshal(map[string]any{"paired": files.Paired, "pending": map[string]any{}})
	var rep db.ImportReport
	ts.mustAPI(t, 200, "POST", base+"/import?mode=replace", string(body), &rep)
	if rep.PairedRemoved != 1 || rep.PairedReplaced != 1 {
		t.Fatalf("import %+v", rep)
	}
	for name, c := range map[string]*wsClient{"removed": removedConn, "re-keyed": rekeyedConn} {
		if code := c.waitClosed(5 * time.Second); code != 1008 {
			t.Fatalf("%s node's session closed with %d", name, code)
		}
	}
	var v db.Verification
	keptConn.mustCall("node.pair.verify", map[string]any{"nodeId": kept.id, "token": keptToken}, &v)
	if !v.OK {
		t.Fatal("the unchanged node's token no longer verifies")
	}

	// The CLI imports through the database; the hub sees its event.
	other, err := db.Open(context.Background(), db.OptionsFor(ts.byName["default"].Config))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	delete(files.Paired, kept.id)
	delete(files.Paired, rekeyed.id)
	paired, _ := json.Marshal(files.Paired)
	st, err := db.ReadLegacy(paired, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Import(context.Background(), st, db.ImportReplace, false, db.Origin{Actor: "import", Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	if code := keptConn.waitClosed(5 * time.Second); code != 1008 {
		t.Fatalf("node removed by the CLI's import: session closed with %d", code)
	}
}

// A trial of a migration found a new profile's bad legacy file logged and
// then the profile served empty, never imported again (its database now
// existed) and, with mirrorLegacyFiles, the files overwritten with "{}"
// within seconds. The profile is now refused, with nothing written, and
// the next start imports the mended files.
func TestAutoImportOfABadFileRefusesTheProfile(t *testing.T) {
	pc := config.NewProfile("default", t.TempDir())
	pc.MirrorLegacyFiles = true
	os.MkdirAll(pc.NodesDir(), 0o700)
	good := snapshot05(t, "paired.json")
	bad := bytes.Replace(good, []byte("}\n}"), []byte("},\n}"), 1) // a trailing comma
	if bytes.Equal(bad, good) {
		t.Fatal("the fixture's shape changed: no trailing comma added")
	}
	pairedPath := filepath.Join(pc.NodesDir(), "paired.json")
	os.WriteFile(pairedPath, bad, 0o600)
	os.WriteFile(filepath.Join(pc.NodesDir(), "pending.json"), snapshot05(t, "pending.json"), 0o600)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	_, err := OpenProfile(context.Background(), pc, log, nil)
	if !errors.Is(err, db.ErrIntegrity) || !strings.Contains(err.Error(), pc.NodesDir()) || !strings.Contains(err.Error(), "paired.json") {
		t.Fatalf("OpenProfile with a bad paired.json = %v; want an error naming the file and its directory", err)
	}
	if b, _ := os.ReadFile(pairedPath); !bytes.Equal(b, bad) {
		t.Fatalf("the bad file was changed:\n%s", b)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(pc.DatabasePath() + suffix); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s%s left behind (%v)", pc.DatabasePath(), suffix, err)
		}
	}

	os.WriteFile(pairedPath, good, 0o600)
	p, err := OpenProfile(context.Background(), pc, log, nil)
	if err != nil {
		t.Fatalf("OpenProfile after the file was mended: %v", err)
	}
	defer p.Close()
	nodes, err := p.Store.Nodes(context.Background())
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes after the second start = %v, %v; want the file's one", nodes, err)
	}
}

// An operator trial: a database with a damaged page was served, answered
// a new request with another record's id and an approve with "already
// approved" from before the restart. quick_check refuses it at start.
func TestADamagedDatabaseIsRefusedAtStart(t *testing.T) {
	pc := config.NewProfile("default", t.TempDir())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := OpenProfile(context.Background(), pc, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := p.Store.Request(context.Background(), db.RequestInput{NodeID: fmt.Sprintf("node-%02d-%s", i, strings.Repeat("x", 100))}, db.Origin{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close() // checkpoints: every page is in the database file
	f, err := os.OpenFile(pc.DatabasePath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Stat()
	last := info.Size()/4096 - 1
	f.WriteAt(bytes.Repeat([]byte{0xA5}, 3000), last*4096+100) // the last page, past its header
	f.Close()
	_, err = OpenProfile(context.Background(), pc, log, nil)
	if !errors.Is(err, db.ErrIntegrity) || !strings.Contains(err.Error(), "is damaged (SQLite's quick_check: ") {
		t.Fatalf("OpenProfile on a damaged database = %v; want a refusal naming quick_check", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("the refusal is not one line: %q", err)
	}
}

// An operator trial: a mirror export that failed (the file was immutable
// for a moment) was never tried again, and paired.json lacked an
// acknowledged approval until some other change. It is retried until it
// succeeds.
func TestAFailedMirrorIsTriedAgain(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.cfg.Profiles[0].MirrorLegacyFiles = true })
	blocker := filepath.Join(ts.byName["default"].Config.NodesDir(), "paired.json")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(blocker); err == nil {
			break // the export at start
		} else if time.Now().After(deadline) {
			t.Fatal("no paired.json mirrored at start")
		}
	}
	// A directory where the file goes: every export fails.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(blocker, "x"), 0o700)
	var res db.RequestResult
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"mirrored"}`, &res)
	ts.mustAPI(t, 200, "POST", base+"/requests/"+res.Request.RequestID+"/approve", "", nil)
	time.Sleep(300 * time.Millisecond) // the change's export fails
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(blocker)
		if bytes.Contains(b, []byte(`"nodeId": "mirrored"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("paired.json not written after the failure cleared, with no other change:\n%s\n%s", b, ts.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(ts.log.String(), "mirroring the legacy files failed; trying again") {
		t.Fatalf("the failure is not logged:\n%s", ts.log)
	}
}

// A migration trial: mirrorLegacyFiles on a profile whose database
// existed before OpenClaw's files were put beside it (so they were never
// imported) replaced them with "{}" at start. The mirror now stays off,
// saying why, while the files hold a pairing the store lacks.
func TestMirrorKeepsFilesWithPairingsTheStoreLacks(t *testing.T) {
	var want []byte
	var pairedPath string
	ts := startServer(t, func(s *serverSetup) {
		pc := s.cfg.Profiles[0]
		p, err := OpenProfile(context.Background(), pc, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Close() // the database exists: no import at start
		want = snapshot05(t, "paired.json")
		pairedPath = filepath.Join(pc.NodesDir(), "paired.json")
		os.WriteFile(pairedPath, want, 0o600)
		s.cfg.Profiles[0].MirrorLegacyFiles = true
	})
	ts.mustAPI(t, 201, "POST", base+"/requests", `{"nodeId":"a-change"}`, nil)
	time.Sleep(2 * mirrorEvery)
	if got, _ := os.ReadFile(pairedPath); !bytes.Equal(got, want) {
		t.Fatalf("the mirror wrote over paired.json:\n%s", got)
	}
	if !strings.Contains(ts.log.String(), "mirrorLegacyFiles is off until the next start") {
		t.Fatalf("not said:\n%s", ts.log)
	}
}

// Without the mirror, OpenClaw's files beside a database made first are
// said at start: nothing else would tell the operator they were never
// imported.
func TestStartSaysLegacyFilesWereNotImported(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) {
		pc := s.cfg.Profiles[0]
		p, err := OpenProfile(context.Background(), pc, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		os.WriteFile(filepath.Join(pc.NodesDir(), "paired.json"), snapshot05(t, "paired.json"), 0o600)
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(ts.log.String(), "the legacy files beside the database hold pairings it does not"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not said:\n%s", ts.log)
		}
	}
}

// The import at a first start is not held to maxPending: refused, the
// whole profile went unserved until the requests expired.
func TestFirstStartImportIgnoresMaxPending(t *testing.T) {
	pc := config.NewProfile("default", t.TempDir())
	pc.MaxPending = 1
	os.MkdirAll(pc.NodesDir(), 0o700)
	now := time.Now().UnixMilli()
	os.WriteFile(filepath.Join(pc.NodesDir(), "pending.json"), []byte(fmt.Sprintf(`{
  "a": {"requestId": "a", "nodeId": "na", "isRepair": false, "ts": %d},
  "b": {"requestId": "b", "nodeId": "nb", "isRepair": false, "ts": %d}
}`, now, now)), 0o600)
	p, err := OpenProfile(context.Background(), pc, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("first start with 2 pending under maxPending 1: %v", err)
	}
	defer p.Close()
	if pending, _ := p.Store.Pending(context.Background()); len(pending) != 2 {
		t.Fatalf("%d pending imported, want 2", len(pending))
	}
}

// An outside trial: a stateDir that did not exist (a typo) was made, and
// an empty profile served, with nothing in the log to say so. Opening it
// again, or a directory that was there, says nothing.
func TestANewStateDirectoryIsLogged(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	existing := config.NewProfile("default", t.TempDir())
	missing := config.NewProfile("work", filepath.Join(t.TempDir(), "typo", "state"))
	for _, pc := range []config.Profile{existing, missing, missing} {
		p, err := OpenProfile(context.Background(), pc, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	if n := strings.Count(logs.String(), "created the profile's state directory, which did not exist"); n != 1 || !strings.Contains(logs.String(), "stateDir="+missing.StateDir) {
		t.Fatalf("%d lines of a new state directory:\n%s", n, logs.String())
	}
}

// An outside trial at 100,000 nodes: mirrorLegacyFiles rewrote 71 MB back
// to back, 0.8 of a core at one approval every 5 s. The mirror now waits
// four times as long as its last export took, at least mirrorEvery.
func TestMirrorWaitsAsLongAsItsExportsTake(t *testing.T) {
	for _, c := range []struct{ took, want time.Duration }{
		{0, mirrorEvery},
		{10 * time.Millisecond, mirrorEvery},
		{time.Second, 4 * time.Second},
		{3 * time.Second, 12 * time.Second},
	} {
		if got := mirrorPause(c.took); got != c.want {
			t.Errorf("after an export of %v the mirror waits %v, want %v", c.took, got, c.want)
		}
	}
}

// Imports run one at a time: the next waits for the slot (its body
// unread), and past ImportWait is refused with 429 and Retry-After,
// changing nothing.
func TestImportsRunOneAtATime(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.ImportWait = 300 * time.Millisecond })
	addr := strings.TrimPrefix(ts.url, "http://")
	body := `{"paired":{},"pending":{}}`
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The first import's body arrives in two parts: it holds the slot
	// until the second.
	head := fmt.Sprintf("POST %s/import?mode=replace HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", base, addr, testToken, len(body))
	if _, err := io.WriteString(conn, head+body[:10]); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(ts.imports) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first import never took the slot")
		}
	}
	r := ts.api(t, "POST", base+"/import", testToken, `{"paired":{"n":{"nodeId":"n","token":"t0123456789abcdef","createdAtMs":1,"approvedAtMs":1}}}`)
	if r.status != 429 || r.header.Get("Retry-After") == "" || !strings.Contains(r.errorMessage(), "another import") {
		t.Fatalf("second import beside the first = %d %v %s", r.status, r.header, r.body)
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first import: %v %v", resp, err)
	}
	var nodes db.NodeList
	ts.mustAPI(t, 200, "GET", base+"/nodes", "", &nodes)
	if len(nodes.Nodes) != 0 {
		t.Fatalf("the refused import paired %+v", nodes.Nodes)
	}
	// The slot is free again.
	ts.mustAPI(t, 200, "POST", base+"/import?dryRun=true", `{"paired":{}}`, nil)
}

// importMembers takes each member's bytes exactly, whatever it holds
// (json.Valid vouched for the body): strings with brackets and escapes,
// scalars, white space.
func TestImportMembersSlicesExactly(t *testing.T) {
	for body, want := range map[string][2]string{
		`{}`:                                    {"", ""},
		` { "pending" : 5 , "paired" : null } `: {"null", "5"},
		`{"paired":{"a":"}\\\"]["},"pending":[]}`: {`{"a":"}\\\"]["}`, "[]"},
		"{\"p\\u0061ired\":\ttrue\n}":             {"true", ""},
		`{"pending":{"x":[1,{"y":"z"}]}}`:         {"", `{"x":[1,{"y":"z"}]}`},
	} {
		paired, pending, err := importMembers([]byte(body))
		if err != nil || string(paired) != want[0] || string(pending) != want[1] {
			t.Errorf("%s: paired %q pending %q %v; want %q", body, paired, pending, err, want)
		}
	}
	if _, _, err := importMembers([]byte(`[1]`)); err == nil || !strings.Contains(err.Error(), "want {") {
		t.Errorf("an array: %v", err)
	}
}

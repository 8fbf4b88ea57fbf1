package db

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What Node.js 20 prints for
//
//	JSON.stringify(JSON.parse('{"screen":…,"b":…,"10":…,"2":…,"01":…,"-1":…,"4294967295":…,"4294967294":…,"1.5":…,"0":…}'))
//
// (run once by hand): array indices first, ascending; the rest as given.
func TestJSOrderMatchesJavaScript(t *testing.T) {
	in := []string{"screen", "b", "10", "2", "01", "-1", "4294967295", "4294967294", "1.5", "0"}
	want := []string{"0", "2", "10", "4294967294", "screen", "b", "01", "-1", "4294967295", "1.5"}
	got := jsOrder(append([]string(nil), in...), func(s string) string { return s })
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("jsOrder = %v, want %v", got, want)
	}
}

func TestPermissionsJSON(t *testing.T) {
	var p Permissions
	if err := json.Unmarshal([]byte(`{"screen":true,"camera":false,"7":true}`), &p); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(p)
	if string(out) != `{"7":true,"screen":true,"camera":false}` {
		t.Fatalf("permissions came back as %s", out)
	}
	for _, bad := range []string{`{"a":true,"a":false}`, `{"a":1}`, `[true]`, `{"a":true`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Fatalf("%s was accepted as permissions", bad)
		}
	}
	// Absent and empty stay apart.
	var m struct {
		P Permissions `json:"permissions,omitzero"`
	}
	if b, _ := json.Marshal(m); string(b) != `{}` {
		t.Fatalf("nil permissions: %s", b)
	}
	m.P = Permissions{}
	if b, _ := json.Marshal(m); string(b) != `{"permissions":{}}` {
		t.Fatalf("empty permissions: %s", b)
	}
}

// A file OpenClaw wrote holds JavaScript's order: a node with an
// integer-like id comes first although paired later, and permissions keep
// the order the node sent them in. Import → export gives the same bytes,
// and so does a node's request that arrives with that order.
func TestLegacyFilesKeepJavaScriptKeyOrder(t *testing.T) {
	paired := []byte(`{
  "42": {
    "nodeId": "42",
    "token": "0123456789abcdef0123456789abcdef",
    "createdAtMs": 1795626100000,
    "approvedAtMs": 1795626100000
  },
  "kitchen": {
    "nodeId": "kitchen",
    "token": "fedcba9876543210fedcba9876543210",
    "permissions": {
      "7": true,
      "screen": true,
      "camera": false
    },
    "createdAtMs": 1795626000000,
    "approvedAtMs": 1795626000000
  }
}`)
	st, err := ReadLegacy(paired, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.UnixMilli(1795626200000)}
	s := openStore(t, clock)
	if _, err := s.Import(ctx, st, ImportMerge, false, Origin{Actor: "import"}); err != nil {
		t.Fatal(err)
	}
	var p Permissions
	json.Unmarshal([]byte(`{"screen":true,"camera":false,"7":true}`), &p)
	res, err := s.Request(ctx, RequestInput{NodeID: "den", NodeMeta: NodeMeta{Permissions: p}}, Origin{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := s.Export(ctx, out, false); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(out, PairedFile)); !bytes.Equal(got, paired) {
		t.Fatalf("paired.json after import → export:\n%s\nwant\n%s", got, paired)
	}
	wantPending := `{
  "` + res.Request.RequestID + `": {
    "requestId": "` + res.Request.RequestID + `",
    "nodeId": "den",
    "permissions": {
      "7": true,
      "screen": true,
      "camera": false
    },
    "isRepair": false,
    "ts": 1795626200000
  }
}`
	if got := readFile(t, filepath.Join(out, PendingFile)); string(got) != wantPending {
		t.Fatalf("pending.json:\n%s\nwant\n%s", got, wantPending)
	}
}

package db

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db/fixture"
)

func snapshots(t testing.TB) []string {
	t.Helper()
	dirs := fixture.Glob(t, filepath.Join("snapshots", "0*"))
	if len(dirs) != 6 {
		t.Fatalf("want the 6 fixture snapshots, found %d: %v", len(dirs), dirs)
	}
	return dirs
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLegacyFormatRoundTripsFixtures(t *testing.T) {
	for _, dir := range snapshots(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			paired, pending := readFile(t, filepath.Join(dir, PairedFile)), readFile(t, filepath.Join(dir, PendingFile))
			st, err := ReadLegacy(paired, pending)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Unknown) != 0 {
				t.Fatalf("2026.1.29 files have no unknown fields, got %v", st.Unknown)
			}
			if got := LegacyPairedJSON(st.Paired, false); !bytes.Equal(got, paired) {
				t.Fatalf("paired.json differs:\n got %q\nwant %q", got, paired)
			}
			if got := LegacyPendingJSON(st.Pending); !bytes.Equal(got, pending) {
				t.Fatalf("pending.json differs:\n got %q\nwant %q", got, pending)
			}
		})
	}
}

func TestJSStringEscaping(t *testing.T) {
	var b bytes.Buffer
	writeJSString(&b, "q\" b\\ \b\f\n\r\t \x01\x1f / < > & \u2028\u2029 é 😀")
	want := `"q\" b\\ \b\f\n\r\t \u0001\u001f / < > & ` + "\u2028\u2029" + ` é 😀"`
	if b.String() != want {
		t.Fatalf("got  %s\nwant %s", b.String(), want)
	}
}

func TestLegacyReaderRefusesBadFiles(t *testing.T) {
	good := `{"n1":{"nodeId":"n1","token":"t","createdAtMs":1,"approvedAtMs":2}}`
	cases := []struct {
		name, paired, pending, want string
	}{
		{"garbage", "garbage", "{}", "paired.json: $: malformed JSON"},
		{"truncated", good[:30], "{}", "paired.json: $[\"n1\"].token: the JSON ends early (truncated?)"},
		{"top level array", "[]", "{}", "paired.json: $: want an object mapping ids to records, got array"},
		{"duplicate key", `{"n1":{"nodeId":"n1","nodeId":"n1"}}`, "{}", `paired.json: $["n1"].nodeId: duplicate key`},
		{"duplicate record", `{"n1":{},"n1":{}}`, "{}", `paired.json: $["n1"]: duplicate key`},
		{"key/id mismatch", `{"n1":{"nodeId":"n2","token":"t","createdAtMs":1,"approvedAtMs":2}}`, "{}", `paired.json: $["n1"].nodeId: "n2" differs from the key it is filed under`},
		{"wrong type", `{"node-a":{"nodeId":"node-a","token":"t","createdAtMs":"1","approvedAtMs":2}}`, "{}", `paired.json: $["node-a"].createdAtMs: want number, got string`},
		{"empty token", `{"n1":{"nodeId":"n1","token":"","createdAtMs":1,"approvedAtMs":2}}`, "{}", `paired.json: $["n1"].token: empty; a paired node needs its token`},
		{"a number for a token: one problem", `{"n1":{"nodeId":"n1","token":5,"createdAtMs":1,"approvedAtMs":2}}`, "{}", `paired.json: $["n1"].token: want string, got number`},
		{"missing field", `{"n1":{"nodeId":"n1","createdAtMs":1,"approvedAtMs":2}}`, "{}", `paired.json: $["n1"].token: missing`},
		{"bad list item", good, `{"r":{"requestId":"r","nodeId":"n","caps":["a",1],"ts":1}}`, `pending.json: $["r"].caps[1]: want string, got number`},
		{"fractional time", good, `{"r":{"requestId":"r","nodeId":"n","ts":1.5}}`, `pending.json: $["r"].ts: want a whole number of milliseconds, got 1.5`},
		{"trailing data", "{} {}", "{}", "paired.json: $: trailing data after the JSON value"},
		{"record not object", `{"n1":5}`, "{}", `paired.json: $["n1"]: want a record (object), got number`},
		{"empty request id", good, `{"x":{"requestId":"","nodeId":"n","ts":1}}`, `pending.json: $["x"].requestId: empty`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadLegacy([]byte(tc.paired), []byte(tc.pending))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %q", err, tc.want)
			}
			if ErrorCode(err) != CodeInvalid {
				t.Fatalf("code %s", ErrorCode(err))
			}
			if strings.Contains(tc.name, "one problem") && strings.Count(err.Error(), tc.want[:strings.LastIndex(tc.want, ":")]) != 1 {
				t.Fatalf("more than one problem for %s:\n%v", tc.want[:strings.LastIndex(tc.want, ":")], err)
			}
		})
	}
	// A long key is named by its start: every problem of its record
	// names it (a 100,000-byte key made a 100,123-byte error).
	long := strings.Repeat("k", 100_000)
	_, err := ReadLegacy([]byte(`{"`+long+`":{"nodeId":"n","x`+long+`":1}}`), nil)
	if err == nil || len(err.Error()) > 2000 || !strings.Contains(err.Error(), `$["kkkk`) || !strings.Contains(err.Error(), `…" (100002 bytes)]`) {
		t.Fatalf("a long key's report (%d bytes): %.600v", len(fmt.Sprint(err)), err)
	}
	// Every problem is reported, not only the first.
	_, err = ReadLegacy([]byte(`{"a":{"nodeId":"a"},"b":{"nodeId":"x","token":""}}`), []byte(`[]`))
	for _, want := range []string{`$["a"].token: missing`, `$["b"].nodeId: "x" differs`, `$["b"].createdAtMs: missing`, "pending.json: $: want an object"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("report lacks %q:\n%v", want, err)
		}
	}
}

func TestReadLegacyDir(t *testing.T) {
	dir := t.TempDir()
	if _, found, err := ReadLegacyDir(dir); found || err != nil {
		t.Fatalf("empty dir: found=%v err=%v", found, err)
	}
	os.WriteFile(filepath.Join(dir, PendingFile), []byte(`{"r":{"requestId":"r","nodeId":"n","ts":5}}`), 0o600)
	st, found, err := ReadLegacyDir(dir)
	if !found || err != nil || len(st.Pending) != 1 || st.Paired != nil {
		t.Fatalf("pending only: %+v %v %v", st, found, err)
	}
	// A 200 MB file is refused by its size, without being read.
	f, _ := os.Create(filepath.Join(dir, PairedFile))
	f.Truncate(200 << 20)
	f.Close()
	if _, _, err := ReadLegacyDir(dir); err == nil || !strings.Contains(err.Error(), "paired.json: $: the file is 209715200 bytes; the limit is 134217728") {
		t.Fatalf("oversized: %v", err)
	}
}

// The legacy reader opens only regular files, never through a link: a
// FIFO is refused without waiting for a writer, a link to /dev/zero or to
// a valid file is refused saying it is a link, a device by its kind.
func TestReadLegacyDirRefusesWhatIsNotARegularFile(t *testing.T) {
	valid := filepath.Join(t.TempDir(), "valid.json")
	if err := os.WriteFile(valid, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(path string) error
		want string
	}{
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "paired.json: $: not a regular file but a FIFO (named pipe)"},
		{"link to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "paired.json: $: the file is a symbolic link; pairgate does not follow links"},
		{"link to a valid file", func(p string) error { return os.Symlink(valid, p) }, "paired.json: $: the file is a symbolic link; pairgate does not follow links"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, "paired.json: $: not a regular file but a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tc.make(filepath.Join(dir, PairedFile)); err != nil {
				t.Skipf("cannot make it here: %v", err)
			}
			os.WriteFile(filepath.Join(dir, PendingFile), []byte(`{}`), 0o600)
			done := make(chan error, 1)
			go func() { _, _, err := ReadLegacyDir(dir); done <- err }()
			select {
			case err := <-done:
				if err == nil || ErrorCode(err) != CodeInvalid || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v\nwant %q", err, tc.want)
				}
			case <-time.After(20 * time.Second): // a hang, not a speed limit
				t.Fatal("ReadLegacyDir hangs")
			}
		})
	}
}

// A migration trial: a hand-edited file with a trailing comma, a comment
// or single quotes was refused as "malformed JSON near offset 330". The
// problem now says the line and column, as an editor shows them, and the
// likely slip.
func TestASyntaxErrorSaysWhereAndWhy(t *testing.T) {
	for in, want := range map[string]string{
		"{\n  \"a\": 1,\n}":     `paired.json: $: malformed JSON at line 3, column 1: invalid character '}' looking for beginning of object key string (a comma before it, after the last item?)`,
		"{\n  // c\n}":          `paired.json: $: malformed JSON at line 2, column 3: invalid character '/' (JSON has no comments)`,
		"{\n  'a': 1\n}":        `paired.json: $: malformed JSON at line 2, column 3: invalid character '\'' (JSON strings and keys take double quotes)`,
		"\xef\xbb\xbf{}":        `(the file starts with a byte order mark: save it as UTF-8 without one)`,
		"{\"a\": 1\n \"b\": 2}": `paired.json: $: malformed JSON at line 2, column 2: invalid character '"' after object key:value pair (a comma missing before it?)`,
	} {
		_, err := ReadLegacy([]byte(in), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadLegacy(%q) = %v\nwant a problem saying %q", in, err, want)
		}
	}
}

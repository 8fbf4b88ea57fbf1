package db

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A WAL that grew while a reader held a snapshot (a backup, a sqlite3
// shell left open) shrinks back to walSizeLimit once the writer restarts
// it: it does not keep its high-water mark on disk for good.
func TestWALShrinksAfterAReaderLetsGo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.sqlite")
	write, read, err := openPools(path, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer write.Close()
	defer read.Close()
	if _, err := write.Exec(`CREATE TABLE big (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	reader, err := read.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRow(`SELECT count(*) FROM big`).Scan(&n); err != nil { // holds the snapshot
		t.Fatal(err)
	}
	blob := []byte(strings.Repeat("x", 1<<20))
	for range 3 * walSizeLimit >> 20 {
		if _, err := write.Exec(`INSERT INTO big (b) VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
	}
	grown := walBytes(t, path)
	if grown < 2*walSizeLimit {
		t.Fatalf("the WAL grew to %d bytes only: the test holds no reader", grown)
	}
	reader.Rollback()
	// The next commits checkpoint the whole WAL (no reader holds it back)
	// and then restart it from its start.
	for range 3 {
		if _, err := write.Exec(`DELETE FROM big WHERE rowid = (SELECT min(rowid) FROM big)`); err != nil {
			t.Fatal(err)
		}
	}
	if after := walBytes(t, path); after > walSizeLimit {
		t.Fatalf("the WAL is still %d bytes (it grew to %d), over the %d limit", after, grown, walSizeLimit)
	}
}

func walBytes(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Package locktest holds a profile database's write lock from another
// connection in tests, as another process does (a sqlite3 shell left
// inside BEGIN; a hung disk looks the same to the server): the store's
// writes wait on it until it is let go.
package locktest

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/pairgate/pairgate/db"
)

// HoldWriteLock takes the write lock of the database at path and keeps
// it until the returned release is called (at the latest, when the test
// ends). release may be called more than once.
func HoldWriteLock(t testing.TB, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite", db.DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := other.Conn(context.Background())
	if err != nil {
		other.Close()
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		lock.Close()
		other.Close()
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			lock.ExecContext(context.Background(), "ROLLBACK")
			lock.Close()
			other.Close()
		})
	}
	t.Cleanup(release)
	return release
}

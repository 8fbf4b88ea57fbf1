package db

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/internal/syncbuf"
)

// A write queued behind one that does not return (a disk that hangs)
// leaves the queue when its caller gives up, and never runs; the store
// says how long the running one has waited.
func TestAQueuedWriteLeavesWhenItsCallerGivesUp(t *testing.T) {
	s := openStore(t, newClock())
	if d := s.WriteStall(); d != 0 {
		t.Fatalf("WriteStall with no write running = %v", d)
	}
	release, held := holdWriter(t, s)
	released := false
	defer func() {
		if !released {
			close(release)
			<-held
		}
	}()
	gaveUp, cancel := context.WithCancel(context.Background())
	answered := make(chan error, 1)
	go func() {
		_, err := s.Request(gaveUp, RequestInput{NodeID: "given-up"}, byCLI)
		answered <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	select {
	case err := <-answered:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the queued request whose caller gave up answered %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a queued write whose caller gave up waited for the write ahead of it")
	}
	if n := s.commit.queued(); n != 0 {
		t.Fatalf("%d writes still queued", n)
	}
	if d := s.WriteStall(); d <= 0 {
		t.Fatalf("WriteStall while a write is held = %v", d)
	}
	time.Sleep(20 * time.Millisecond)
	err := s.Stalled(10 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), s.path) || !strings.Contains(err.Error(), "no write has gone through") || !strings.Contains(err.Error(), "latest one (hold)") {
		t.Fatalf("Stalled while a write is held = %v", err)
	}
	if err := s.Stalled(time.Hour); err != nil {
		t.Fatalf("Stalled under its limit = %v", err)
	}
	released = true
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if d := s.WriteStall(); d != 0 {
		t.Fatalf("WriteStall after the write returned = %v", d)
	}
	if _, err := s.RequestStatus(ctx, "given-up"); ErrorCode(err) != CodeNotFound {
		t.Fatalf("the given-up request: %v", err)
	}
	pending, err := s.Pending(ctx)
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending after the given-up request = %v, %v", pending, err)
	}
}

// WatchWrites logs a write that has run past its limit, and the return
// of writes once it ends.
func TestWatchWritesLogsAStallAndItsEnd(t *testing.T) {
	logs := &syncbuf.Buffer{}
	opts := testOptions(t.TempDir(), newClock())
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s := openWith(t, opts)
	watch, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.WatchWrites(watch, 40*time.Millisecond); close(stopped) }()
	defer func() { stop(); <-stopped }()
	release, held := holdWriter(t, s)
	waitLog(t, logs, "writes are stalled")
	if strings.Contains(logs.String(), "writes go through again") {
		t.Fatalf("recovery logged while the write is held:\n%s", logs)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "writes go through again")
}

func waitLog(t *testing.T, logs *syncbuf.Buffer, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", line, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A write that fails after SQLITE_BUSY's retries (a lock held longer than
// they last) does not end the stall: the next one continues it (the
// stall, and /readyz with it, went back to 0 every ~26 s while the lock
// stayed held). A commit ends it.
func TestAStallOutlastsAWriteThatGaveUpBusy(t *testing.T) {
	s := openStore(t, newClock())
	// A real SQLITE_BUSY: a second connection that may not wait, on a
	// file another holds the write lock of.
	path := filepath.Join(t.TempDir(), "locked.sqlite")
	holder, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	lock, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE; CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, busy := other.Begin()
	if !isBusy(busy) {
		t.Fatalf("no SQLITE_BUSY to give: %v", busy)
	}
	if err := s.writeTx(ctx, "gives up", func(*sql.Tx) error { return busy }); !isBusy(errors.Unwrap(err)) && !strings.Contains(err.Error(), "busy") {
		t.Fatalf("the write that meets SQLITE_BUSY: %v", err)
	}
	first := s.WriteStall()
	if first <= 0 {
		t.Fatal("the stall ended with a write that gave up busy")
	}
	time.Sleep(10 * time.Millisecond)
	if err := s.writeTx(ctx, "gives up again", func(*sql.Tx) error { return busy }); err == nil {
		t.Fatal("the second busy write succeeded")
	}
	if d := s.WriteStall(); d < first+10*time.Millisecond {
		t.Fatalf("WriteStall after a second busy write = %v, want at least %v: the stall started again", d, first+10*time.Millisecond)
	}
	if err := s.Stalled(first); err == nil || !strings.Contains(err.Error(), "latest one (gives up again)") {
		t.Fatalf("Stalled = %v", err)
	}
	mustRequest(t, s, RequestInput{NodeID: "goes-through"})
	if d := s.WriteStall(); d != 0 {
		t.Fatalf("WriteStall after a commit = %v", d)
	}
}

package db

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestWebhookCursor(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, newClock())
	by := Origin{Actor: "test"}
	for _, node := range []string{"a", "b", "c"} {
		if _, err := s.Request(ctx, RequestInput{NodeID: node}, by); err != nil {
			t.Fatal(err)
		}
	}
	// A new endpoint starts at the newest event; opening again keeps it.
	w, created, err := s.OpenWebhook(ctx, "wh_1")
	if err != nil || !created || w.Cursor != 3 || w.Attempts != 0 {
		t.Fatalf("open = %+v, %t, %v", w, created, err)
	}
	w.Cursor, w.Attempts, w.FailingSinceMs, w.LastError = 2, 4, 77, "HTTP 500"
	if err := s.SaveWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if again, created, err := s.OpenWebhook(ctx, "wh_1"); err != nil || created || again != w {
		t.Fatalf("reopen = %+v, %t, %v; want %+v, not created", again, created, err, w)
	}
	// A redeliver wins over a delivery that was in flight when it came.
	w.DeadAtMs = 99
	if err := s.SaveWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	moved, err := s.RedeliverWebhook(ctx, "wh_1", 1)
	if err != nil || moved.Cursor != 0 || moved.DeadAtMs != 0 || moved.Attempts != 0 || moved.LastError != "" || moved.Generation != w.Generation+1 {
		t.Fatalf("redeliver = %+v, %v", moved, err)
	}
	w.Cursor = 3
	if err := s.SaveWebhook(ctx, w); !errors.Is(err, ErrWebhookMoved) {
		t.Fatalf("stale save = %v, want ErrWebhookMoved", err)
	}
	if got, _ := s.Webhook(ctx, "wh_1"); got.Cursor != 0 {
		t.Fatalf("stale save changed the cursor: %+v", got)
	}
	// from 0 resumes where the cursor is.
	if got, err := s.RedeliverWebhook(ctx, "wh_1", 0); err != nil || got.Cursor != 0 {
		t.Fatalf("redeliver from 0 = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		id   string
		from int64
		code Code
	}{{"wh_none", 1, CodeNotFound}, {"wh_1", 5, CodeInvalid}} {
		if _, err := s.RedeliverWebhook(ctx, tc.id, tc.from); ErrorCode(err) != tc.code {
			t.Errorf("redeliver %s from %d = %v, want %s", tc.id, tc.from, err, tc.code)
		}
	}
	if _, err := s.Webhook(ctx, "wh_none"); ErrorCode(err) != CodeNotFound {
		t.Errorf("unknown webhook = %v", err)
	}
}

// A redeliver from an event no longer kept resumes with the first one
// that is, and says so in the cursor it answers.
func TestRedeliverFromPrunedEvents(t *testing.T) {
	s, clk := retentionStore(t)
	for i := range 3 {
		mustRequest(t, s, RequestInput{NodeID: fmt.Sprintf("old-%d", i)}) // events 1–3
	}
	if _, _, err := s.OpenWebhook(ctx, "wh_1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2*time.Hour + time.Millisecond)
	if res, err := s.Sweep(ctx); err != nil || res.PrunedEvents != 3 {
		t.Fatalf("sweep %+v, %v", res, err)
	}
	// The sweep expired the three requests: events 4–6 are kept.
	for _, tc := range []struct{ from, cursor int64 }{{1, 3}, {3, 3}, {4, 3}, {5, 4}, {0, 4}} {
		if got, err := s.RedeliverWebhook(ctx, "wh_1", tc.from); err != nil || got.Cursor != tc.cursor {
			t.Errorf("redeliver from %d = %+v, %v; want cursor %d", tc.from, got, err, tc.cursor)
		}
	}
	// From the cursor, where the events after it are pruned.
	w, _ := s.Webhook(ctx, "wh_1")
	w.Cursor = 1
	if err := s.SaveWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if got, err := s.RedeliverWebhook(ctx, "wh_1", 0); err != nil || got.Cursor != 3 {
		t.Errorf("redeliver from cursor 1 = %+v, %v; want cursor 3", got, err)
	}
}

// With every event pruned, the newest event handed out still counts: a
// new endpoint starts after it (not at 0, before events it never saw),
// and a redeliver may name the next one.
func TestWebhooksKnowTheNewestEventWhenAllArePruned(t *testing.T) {
	s, clk := retentionStore(t)
	id := mustRequest(t, s, RequestInput{NodeID: "a"}).Request.RequestID
	if _, err := s.Reject(ctx, id, byCLI); err != nil { // events 1 and 2
		t.Fatal(err)
	}
	clk.Advance(3 * time.Hour)
	if res, err := s.Sweep(ctx); err != nil || res.PrunedEvents != 2 {
		t.Fatalf("sweep %+v, %v", res, err)
	}
	w, _, err := s.OpenWebhook(ctx, "wh_new")
	if err != nil || w.Cursor != 2 {
		t.Fatalf("a new endpoint with every event pruned: %+v, %v; want cursor 2", w, err)
	}
	if got, err := s.RedeliverWebhook(ctx, "wh_new", 3); err != nil || got.Cursor != 2 {
		t.Fatalf("redeliver from the next event: %+v, %v", got, err)
	}
	_, err = s.RedeliverWebhook(ctx, "wh_new", 4)
	wantCode(t, err, CodeInvalid, "from 4 is beyond the newest event (2)")
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
)

// sseHeartbeat keeps idle streams (and the proxies between) alive.
const sseHeartbeat = 15 * time.Second

// handleEvents streams the profile's outbox as Server-Sent Events: id is
// the event's seq, event its name, data its JSON payload. A client that
// resumes with Last-Event-ID (or ?after=) gets every event after it from
// the outbox, then the live stream, with nothing missed or repeated.
func (s *Server) handleEvents(c echo.Context) error {
	p := profileOf(c)
	after, resuming, err := resumePoint(c)
	if err != nil {
		return err
	}
	resumedAfter := after
	after, reset, err := resumeAt(c.Request().Context(), p.Store, after, resuming)
	if err != nil {
		return err
	}
	// Subscribe before reading the backlog, so nothing falls between them;
	// anything seen twice is skipped by seq.
	live := make(chan db.Event, 256)
	unsubscribe := p.hub.Subscribe(live)
	defer unsubscribe()
	s.metrics.sseClients.WithLabelValues(p.Config.Name).Inc()
	defer s.metrics.sseClients.WithLabelValues(p.Config.Name).Dec()

	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A subscriber that stops reading is dropped like a slow WS reader:
	// each write has writeWait to go out. Shutdown ends a blocked write at
	// once instead of waiting for it.
	rc := http.NewResponseController(w)
	unblock := context.AfterFunc(s.stopCtx, func() { rc.SetWriteDeadline(time.Now()) })
	defer unblock()
	send := func(write func() error) error {
		deadline := time.Now().Add(s.writeWait)
		rc.SetWriteDeadline(deadline)
		if s.stopCtx.Err() != nil {
			return s.stopCtx.Err()
		}
		err := write()
		if err == nil {
			err = rc.Flush()
		}
		// By the deadline, whatever error the write path wrapped it in
		// (a trial saw a reader dropped without this line).
		if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline)) && s.stopCtx.Err() == nil {
			s.log.Warn("dropping an event-stream client that does not read", "profile", p.Config.Name, "remote", c.RealIP())
		}
		return err
	}
	comment := func(text string) func() error {
		return func() error { _, err := fmt.Fprint(w, text); return err }
	}
	if send(comment(": pairgate event stream\n\n")) != nil {
		return nil
	}
	if reset != nil {
		s.log.Warn(reset.log, "profile", p.Config.Name, "remote", c.RealIP(), "resumedAfter", resumedAfter, "resetTo", reset.id)
		if send(func() error { return writeReset(w, reset.id, reset.data) }) != nil {
			return nil
		}
	}

	ctx := c.Request().Context()
	last := after
	// catchUp sends what the outbox holds after last.
	catchUp := func() error {
		for {
			events, err := p.Store.EventsAfter(ctx, last, 512)
			if err != nil {
				return err
			}
			err = send(func() error {
				for _, e := range events {
					if err := writeEvent(w, e); err != nil {
						return err
					}
					last = e.Seq
				}
				return nil
			})
			if err != nil || len(events) < 512 {
				return err
			}
		}
	}
	if err := catchUp(); err != nil {
		return nil // the stream has started; the client reconnects
	}
	heartbeat := time.NewTicker(sseHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopCtx.Done():
			return nil
		case <-heartbeat.C:
			err = send(comment(": heartbeat\n\n"))
		case e := <-live:
			switch {
			case e.Seq <= last:
				continue // already sent from the backlog
			case e.Seq > last+1:
				// A gap: this stream fell behind the hub. The outbox has it all.
				err = catchUp()
			default:
				err = send(func() error { return writeEvent(w, e) })
				if err == nil {
					last = e.Seq
				}
			}
		}
		if err != nil {
			return nil
		}
	}
}

// resumePoint reads Last-Event-ID or, without it, ?after=; resuming is
// false when the client gave neither. The header wins: an EventSource
// reconnects to the URL it was opened with, ?after= included, and sends
// the last id it received in Last-Event-ID.
func resumePoint(c echo.Context) (after int64, resuming bool, err error) {
	v := c.Request().Header.Get("Last-Event-ID")
	if v == "" {
		v = c.QueryParam("after")
	}
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, apiError(db.CodeInvalid, "Last-Event-ID / after must be an event id (a whole number ≥ 0)")
	}
	return n, true, nil
}

// streamReset is the event that tells a client its resume point is past
// the newest event: what it knew may be gone, so it re-lists.
const streamReset = "stream.reset"

// resetEvent is a stream.reset to send first: its id (where the stream
// goes on from), its data, and the log line.
type resetEvent struct {
	id   int64
	data map[string]any
	log  string
}

// resumeAt says after which seq a stream starts, and whether a
// stream.reset comes first. A new subscriber starts at the live end. A
// resume point past the highest seq handed out comes from another
// history (the database was restored or replaced): it starts at the live
// end, told to reset. One older than the oldest event kept (retention
// pruned the ones after it) goes on with what is kept, told what it lost:
// either was skipped in silence.
func resumeAt(ctx context.Context, st *db.Store, after int64, resuming bool) (int64, *resetEvent, error) {
	newest, err := st.IssuedSeq(ctx)
	if err != nil || !resuming {
		return newest, nil, err
	}
	if after > newest {
		return newest, &resetEvent{id: newest, log: "an event stream resumed past the newest event: told to reset",
			data: map[string]any{"newestSeq": newest, "resumedAfter": after,
				"reason": "the resume point is past the newest event: the profile's database was restored or replaced; list pending requests and paired nodes again"}}, nil
	}
	oldest, err := st.OldestSeq(ctx)
	if err != nil {
		return 0, nil, err
	}
	pruned := int64(0)
	switch {
	case oldest > after+1:
		pruned = oldest - 1
	case oldest == 0 && newest > after:
		pruned = newest
	}
	if pruned == 0 {
		return after, nil, nil
	}
	return pruned, &resetEvent{id: pruned, log: "an event stream resumed before the oldest event kept: told to reset",
		data: map[string]any{"prunedThrough": pruned, "resumedAfter": after,
			"reason": fmt.Sprintf("the events after %d through %d are no longer kept (retention.events pruned them); list pending requests and paired nodes again; the stream goes on with the events kept", after, pruned)}}, nil
}

func writeReset(w *echo.Response, id int64, data map[string]any) error {
	b, err := json.Marshal(data)
	if err == nil {
		_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", id, streamReset, b)
	}
	return err
}

func writeEvent(w *echo.Response, e db.Event) error {
	_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Name, e.Payload)
	return err
}

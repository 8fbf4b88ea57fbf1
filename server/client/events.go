package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pairgate/pairgate/db"
)

// maxEventLine bounds one line of the event stream (an event's data).
const maxEventLine = 1 << 20

// EventStream is a profile's outbox as the server streams it
// (Server-Sent Events), read one event at a time.
type EventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Events opens the profile's event stream. With after ≥ 0 it resumes
// after event seq after (Last-Event-ID, as an EventSource reconnects):
// every event since comes first. With after < 0 it starts at the live
// end. Cancelling ctx, or Close, ends it.
func (c *Client) Events(ctx context.Context, profile string, after int64) (*EventStream, error) {
	req, err := c.newRequest(ctx, http.MethodGet, c.profile(profile, nil, "events"), nil)
	if err != nil {
		return nil, err
	}
	if after >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		return nil, answerError(resp, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("unexpected answer from %s: an event stream of type %q", c.base, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, maxEventLine)
	return &EventStream{body: resp.Body, sc: sc}, nil
}

// Next waits for the next event. Its TS is not sent on the stream and is
// zero. The error is io.EOF when the server ended the stream.
func (s *EventStream) Next() (db.Event, error) {
	var e db.Event
	seen := false
	for s.sc.Scan() {
		field, value, _ := strings.Cut(s.sc.Text(), ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			seq, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return e, fmt.Errorf("event stream: bad id %q", value)
			}
			e.Seq, seen = seq, true
		case "event":
			e.Name = value
		case "data":
			e.Payload = json.RawMessage(value)
		case "": // a blank line ends an event; a comment (": heartbeat") is skipped
			if seen && s.sc.Text() == "" {
				return e, nil
			}
		}
	}
	if err := s.sc.Err(); err != nil {
		return e, err
	}
	return e, io.EOF
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

package client

import (
	"context"
	"encoding/json"
	"net/http"
)

// Readiness is the answer of /readyz: each profile's state ("ok",
// "unavailable"), and "server": "shutting down" while it stops; for each
// replicated profile its replica's state (db/replica.Status, left raw so
// the client does not bring in the replication engine).
type Readiness struct {
	OK          bool                       `json:"ok"`
	Profiles    map[string]string          `json:"profiles"`
	Replication map[string]json.RawMessage `json:"replication,omitempty"`
	// Errors says why a profile is unavailable.
	Errors map[string]string `json:"errors,omitempty"`
}

// Ready asks whether the server and each of its profiles can serve; it
// needs no token. A server that is up but not ready answers 503 with its
// Readiness: that comes with the error (code unavailable).
func (c *Client) Ready(ctx context.Context) (Readiness, error) {
	var res Readiness
	status, raw, err := c.exchange(ctx, http.MethodGet, c.endpoint(nil, "readyz"), nil)
	switch {
	case status == http.StatusServiceUnavailable:
		json.Unmarshal(raw, &res) // best effort: the error says it all
	case err == nil:
		err = c.decode(raw, &res)
	}
	return res, err
}

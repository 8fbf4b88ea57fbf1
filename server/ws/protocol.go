package ws

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/rpc"
)

// The OpenClaw gateway protocol versions pairgate speaks: 3, and 4, which
// OpenClaw clients ask for alone from 2026.5.12 (it changed chat frames,
// none that pairgate serves).
const (
	minProtocolVersion = 3
	maxProtocolVersion = 4
)

// Frames of the protocol. Each carries exactly these keys: the real client
// drops a frame with any other key.
type (
	reqFrame struct {
		Type   string          `json:"type"`
		ID     string          `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params,omitempty"`
	}
	resFrame struct {
		Type    string     `json:"type"`
		ID      string     `json:"id"`
		OK      bool       `json:"ok"`
		Payload any        `json:"payload,omitempty"`
		Error   *rpc.Error `json:"error,omitempty"`
	}
	eventFrame struct {
		Type    string `json:"type"`
		Event   string `json:"event"`
		Payload any    `json:"payload,omitempty"`
		Seq     int64  `json:"seq,omitempty"`
	}
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own frame types reach here
	}
	return b
}

// decodeFrame parses one client frame strictly: a JSON object with exactly
// the request keys. It returns the id it found (for error replies) even
// when the frame is bad.
func decodeFrame(data []byte) (reqFrame, error) {
	if f, ok := quickFrame(data); ok {
		return f, nil
	}
	return strictFrame(data)
}

// strictFrame is decodeFrame the slow way, which says what is wrong.
func strictFrame(data []byte) (reqFrame, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		// Say what is wrong (nesting beyond 64 levels, where it breaks)
		// when the strict reading can.
		if err := db.CheckJSONObject(data); err != nil {
			return reqFrame{}, err
		}
		return reqFrame{}, fmt.Errorf("not a JSON object")
	}
	var f reqFrame
	id, hasID := raw["id"]
	if hasID {
		json.Unmarshal(id, &f.ID)
	}
	if len(f.ID) > maxFrameID {
		// Every answer echoes the id: a client that sends long ones and
		// reads none would have them queued by the megabyte.
		return reqFrame{}, fmt.Errorf("id longer than %d bytes", maxFrameID)
	}
	// Refused rather than read leniently: encoding/json would replace bad
	// UTF-8 and let the last of two equal keys win.
	if err := db.CheckUTF8JSON(data); err != nil {
		return f, err
	}
	if err := db.CheckJSONObject(data); err != nil {
		return f, err
	}
	for k := range raw {
		if k != "type" && k != "id" && k != "method" && k != "params" {
			return f, fmt.Errorf("unexpected property '%s'", k)
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return reqFrame{ID: f.ID}, fmt.Errorf("bad field types")
	}
	switch {
	case f.Type != "req":
		return f, fmt.Errorf("type must be \"req\"")
	case f.ID == "":
		return f, fmt.Errorf("id must be a non-empty string")
	case f.Method == "":
		return f, fmt.Errorf("method must be a non-empty string")
	}
	return f, nil
}

// quickFrame reads a well-formed request in one pass (db.QuickObject). It
// vouches only for what the strict reading below accepts the same way;
// anything else (including every error) goes the strict way.
func quickFrame(data []byte) (reqFrame, bool) {
	if db.CheckUTF8JSON(data) != nil {
		return reqFrame{}, false
	}
	var f reqFrame
	ok := db.QuickObject(data, func(key, value []byte) bool {
		switch string(key) {
		case "type":
			return plainString(value, &f.Type)
		case "id":
			return plainString(value, &f.ID)
		case "method":
			return plainString(value, &f.Method)
		case "params":
			f.Params = value
			return true
		}
		return false
	})
	if !ok || f.Type != "req" || f.ID == "" || len(f.ID) > maxFrameID || f.Method == "" {
		return reqFrame{}, false
	}
	return f, true
}

// plainString reads a JSON string written without escapes.
func plainString(value []byte, to *string) bool {
	if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' || bytes.IndexByte(value, '\\') >= 0 {
		return false
	}
	*to = string(value[1 : len(value)-1])
	return true
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/pairgate/pairgate/db"
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
		Type    string    `json:"type"`
		ID      string    `json:"id"`
		OK      bool      `json:"ok"`
		Payload any       `json:"payload,omitempty"`
		Error   *rpcError `json:"error,omitempty"`
	}
	eventFrame struct {
		Type    string `json:"type"`
		Event   string `json:"event"`
		Payload any    `json:"payload,omitempty"`
		Seq     int64  `json:"seq,omitempty"`
	}
)

// WS error codes.
const (
	codeInvalidRequest = "INVALID_REQUEST"
	codeUnavailable    = "UNAVAILABLE"
	codeNotPaired      = "NOT_PAIRED"
)

// rpcError is the error member of a response frame.
type rpcError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
	// status overrides the HTTP status rpcStatus gives Code.
	status int
	// retryAfter, when set, becomes the HTTP answer's Retry-After.
	retryAfter time.Duration
}

func (e *rpcError) Error() string { return e.Message }

func invalidRequest(format string, args ...any) *rpcError {
	return &rpcError{Code: codeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// wsCode maps each store error code to its WS code, in one place.
var wsCode = map[db.Code]string{
	db.CodeInvalid:     codeInvalidRequest,
	db.CodeNotFound:    codeInvalidRequest,
	db.CodeConflict:    codeInvalidRequest,
	db.CodeExpired:     codeInvalidRequest,
	db.CodeLimit:       codeUnavailable,
	db.CodeUnavailable: codeUnavailable,
	db.CodeInternal:    codeUnavailable,
}

// toRPCError turns any error into the response error member.
func toRPCError(err error) *rpcError {
	var re *rpcError
	if errors.As(err, &re) {
		return re
	}
	return &rpcError{Code: wsCode[db.ErrorCode(err)], Message: db.ErrorMessage(err)}
}

// decodeFrame parses one client frame strictly: a JSON object with exactly
// the request keys. It returns the id it found (for error replies) even
// when the frame is bad.
func decodeFrame(data []byte) (reqFrame, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return reqFrame{}, fmt.Errorf("not a JSON object")
	}
	var f reqFrame
	id, hasID := raw["id"]
	if hasID {
		json.Unmarshal(id, &f.ID)
	}
	// Refused rather than read leniently: encoding/json would replace bad
	// UTF-8 and let the last of two equal keys win.
	if !utf8.Valid(data) {
		return f, fmt.Errorf("not valid UTF-8")
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

// kind is a parameter's JSON type in a schema.
type kind int

const (
	kString      kind = iota // non-empty string
	kAnyString               // any string
	kStringList              // list of non-empty strings
	kBool                    //
	kInt                     // integer ≥ 1
	kPermissions             // object of booleans
	kObject                  // nested schema (see field.sub)
	kAny                     // any JSON value, not looked into
)

type field struct {
	name     string
	kind     kind
	required bool
	sub      schema // for kObject
}

// schema describes a params object: its fields, in order, and nothing else.
type schema []field

// check validates raw against the schema and reports the first problem in
// the wording of OpenClaw's validator ("must have required property 'x'",
// "at root: unexpected property 'x'", "at /caps/0: must NOT have fewer
// than 1 characters"), so messages match what its clients know.
func (sc schema) check(raw json.RawMessage) error {
	return sc.checkAt("", raw)
}

func (sc schema) checkAt(path string, raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		raw = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return pathError(path, "must be object")
	}
	for _, f := range sc {
		if _, ok := obj[f.name]; f.required && !ok {
			if path == "" {
				return fmt.Errorf("must have required property '%s'", f.name)
			}
			return pathError(path, fmt.Sprintf("must have required property '%s'", f.name))
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.ContainsFunc(sc, func(f field) bool { return f.name == k }) {
			at := path
			if at == "" {
				at = "root"
			}
			return fmt.Errorf("at %s: unexpected property '%s'", at, k)
		}
	}
	for _, f := range sc {
		v, ok := obj[f.name]
		if !ok {
			continue
		}
		if err := f.checkValue(path+"/"+f.name, v); err != nil {
			return err
		}
	}
	return nil
}

func pathError(path, msg string) error {
	if path == "" {
		return errors.New(msg)
	}
	return fmt.Errorf("at %s: %s", path, msg)
}

func (f field) checkValue(path string, v json.RawMessage) error {
	switch f.kind {
	case kString, kAnyString:
		var s string
		if json.Unmarshal(v, &s) != nil || v[0] != '"' {
			return pathError(path, "must be string")
		}
		if f.kind == kString && s == "" {
			return pathError(path, "must NOT have fewer than 1 characters")
		}
	case kStringList:
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil || v[0] != '[' {
			return pathError(path, "must be array")
		}
		for i, item := range items {
			if err := (field{kind: kString}).checkValue(fmt.Sprintf("%s/%d", path, i), item); err != nil {
				return err
			}
		}
	case kBool:
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return pathError(path, "must be boolean")
		}
	case kInt:
		var n float64
		if json.Unmarshal(v, &n) != nil || n != float64(int64(n)) {
			return pathError(path, "must be integer")
		}
		if n < 1 {
			return pathError(path, "must be >= 1")
		}
	case kPermissions:
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) != nil || m == nil {
			return pathError(path, "must be object")
		}
		for k, b := range m {
			if err := (field{kind: kBool}).checkValue(path+"/"+k, b); err != nil {
				return err
			}
		}
	case kObject:
		return f.sub.checkAt(path, v)
	}
	return nil
}

package rpc

import (
	"errors"
	"fmt"

	"github.com/pairgate/pairgate/db"
)

// The WS protocol's error codes.
const (
	CodeInvalidRequest = "INVALID_REQUEST"
	CodeUnavailable    = "UNAVAILABLE"
	CodeNotPaired      = "NOT_PAIRED"
)

// Error is the error member of a response frame.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// wsCode maps each domain code to the WS protocol's code, in one place.
// The protocol has few codes: OpenClaw's clients tell a caller's mistake
// (INVALID_REQUEST) from the gateway's trouble (UNAVAILABLE).
var wsCode = map[db.Code]string{
	db.CodeInvalid:              CodeInvalidRequest,
	db.CodeNotFound:             CodeInvalidRequest,
	db.CodeConflict:             CodeInvalidRequest,
	db.CodeExpired:              CodeInvalidRequest,
	db.CodeUnauthorized:         CodeInvalidRequest,
	db.CodeForbidden:            CodeInvalidRequest,
	db.CodeTooLarge:             CodeInvalidRequest,
	db.CodeUnsupportedMediaType: CodeInvalidRequest,
	db.CodeMethodNotAllowed:     CodeInvalidRequest,
	db.CodeNotPaired:            CodeNotPaired,
	db.CodeRateLimited:          CodeUnavailable,
	db.CodeTimeout:              CodeUnavailable,
	db.CodeLimit:                CodeUnavailable,
	db.CodeUnavailable:          CodeUnavailable,
	db.CodeInternal:             CodeUnavailable,
}

// ErrNodeIDRequired is node.pair.request without a nodeId. (legacy)
// OpenClaw 2026.1.29 answers it as UNAVAILABLE "Error: nodeId required"
// over the WebSocket, and its recorded frames are the contract there; on
// every other face it is bad input like any other.
var ErrNodeIDRequired = &db.Error{Code: db.CodeInvalid, Message: "nodeId required"}

// WireError turns any error into the response frame's error member. Foreign
// errors are internal: their text never reaches a client.
func WireError(err error) *Error {
	if errors.Is(err, ErrNodeIDRequired) {
		return &Error{Code: CodeUnavailable, Message: "Error: " + ErrNodeIDRequired.Message}
	}
	var e *db.Error
	if !errors.As(err, &e) {
		return &Error{Code: CodeUnavailable, Message: db.ErrorMessage(err)}
	}
	return &Error{Code: wsCode[e.Code], Message: e.Message, Details: e.Details}
}

func invalid(format string, args ...any) error {
	return &db.Error{Code: db.CodeInvalid, Message: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &db.Error{Code: db.CodeForbidden, Message: fmt.Sprintf(format, args...)}
}

package db

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for every face of pairgate: the WebSocket and
// HTTP layers each map it once, in one table.
type Code string

const (
	// CodeInvalid: the input is wrong; retrying it unchanged cannot help.
	CodeInvalid Code = "invalid"
	// CodeNotFound: no such request or node (or never kept).
	CodeNotFound Code = "not_found"
	// CodeConflict: the request was already decided.
	CodeConflict Code = "conflict"
	// CodeExpired: the request expired before it was decided.
	CodeExpired Code = "expired"
	// CodeLimit: a per-profile capacity is reached (pending requests).
	CodeLimit Code = "limit"
	// CodeUnavailable: the store cannot serve now (closed, busy, disk).
	CodeUnavailable Code = "unavailable"
	// CodeInternal: a bug or corrupt data; the message is generic.
	CodeInternal Code = "internal"

	// The codes below are found by the faces rather than the store (auth,
	// limits, bodies); they live here so that every face and the typed
	// client share one vocabulary, each face mapping it in one table.

	// CodeUnauthorized: no credential, or a wrong one.
	CodeUnauthorized Code = "unauthorized"
	// CodeForbidden: the credential is good but does not allow this.
	CodeForbidden Code = "forbidden"
	// CodeRateLimited: too many attempts; Error.RetryAfter says when to
	// try again.
	CodeRateLimited Code = "rate_limited"
	// CodeTooLarge: the input is over a size limit.
	CodeTooLarge Code = "too_large"
	// CodeTimeout: the input did not arrive in time.
	CodeTimeout Code = "timeout"
	// CodeUnsupportedMediaType: the body is not of a type the route reads.
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	// CodeMethodNotAllowed: the path exists, the method does not.
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeNotPaired: the device must be approved (again) before it may
	// connect as a node.
	CodeNotPaired Code = "not_paired"
)

// Error is pairgate's one error type: a Code, a Message safe to show to
// any caller, and the underlying cause for logs.
type Error struct {
	Code    Code
	Message string
	// Details is user-safe structure for clients (e.g. every problem of a
	// file); nil when the message says it all.
	Details any
	// RetryAfter, when above zero, is how long a refused caller should
	// wait (CodeRateLimited, CodeLimit).
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the Code of err, CodeInternal for foreign errors.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the user-safe message of err: its own for a *Error,
// a generic one otherwise (foreign errors may carry paths or SQL).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

func errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) error { return errorf(CodeInvalid, format, args...) }

func internal(err error, what string) error {
	return &Error{Code: CodeInternal, Message: "internal error", Err: fmt.Errorf("%s: %w", what, err)}
}

// ErrSchemaTooNew means the database was migrated by a newer pairgate. The
// command line turns it into exit code 78 (EX_CONFIG).
var ErrSchemaTooNew = errors.New("database schema is newer than this pairgate")

// ErrIntegrity means the state directory's files do not belong together:
// the database is missing or empty beside its key, or the key is missing
// or wrong for the tokens the database holds. Starting anyway would lose
// pairings or tokens silently; the message says what to restore. The
// command line turns it into exit code 78 (EX_CONFIG).
var ErrIntegrity = errors.New("the state directory is not consistent")

// ErrSchemaBehind means the database needs migrations this process may not
// apply (only a holder of the state-directory lock migrates).
var ErrSchemaBehind = errors.New("database schema is older than this pairgate")

package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
)

// errorBody is the one error shape of the HTTP API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// httpStatus maps each domain error code to its HTTP status, in one place.
var httpStatus = map[db.Code]int{
	db.CodeInvalid:              http.StatusBadRequest,
	db.CodeNotFound:             http.StatusNotFound,
	db.CodeConflict:             http.StatusConflict,
	db.CodeExpired:              http.StatusGone,
	db.CodeLimit:                http.StatusServiceUnavailable,
	db.CodeUnavailable:          http.StatusServiceUnavailable,
	db.CodeInternal:             http.StatusInternalServerError,
	db.CodeUnauthorized:         http.StatusUnauthorized,
	db.CodeForbidden:            http.StatusForbidden,
	db.CodeRateLimited:          http.StatusTooManyRequests,
	db.CodeTooLarge:             http.StatusRequestEntityTooLarge,
	db.CodeTimeout:              http.StatusRequestTimeout,
	db.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	db.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	db.CodeNotPaired:            http.StatusUnauthorized,
}

// apiError is a refusal of the HTTP layer itself, in the domain's codes.
func apiError(code db.Code, format string, args ...any) *db.Error {
	return &db.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// handleError writes every error as errorBody. Internal causes are
// logged, never sent.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := errorResponse(err)
	var de *db.Error
	if errors.As(err, &de) && de.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(de.RetryAfter.Seconds())))
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, "Bearer")
	}
	switch {
	case status < 500:
	case c.Request().Context().Err() != nil:
		// The client went away: nobody reads this answer (the
		// dispatcher's line, at info, names the call).
		s.log.Debug("request given up by its client", "method", c.Request().Method, "path", c.Path(), "err", err)
		return
	case db.ErrorCode(err) == db.CodeLimit:
		// A capacity reached (maxPending) is flow control, answered as
		// such, not a fault of the server (a documentation trial).
		s.log.Warn("request refused: the profile is at capacity", "method", c.Request().Method, "path", c.Path(), "status", status, "err", err)
	default:
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "status", status, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	c.JSON(status, errorBody{Error: detail})
}

// errorResponse is the one table from errors to statuses and bodies. It
// unwraps: echo's own errors (unknown route, wrong method) and ours are
// found however deeply wrapped (echo v4's default handler misses wrapped
// ones).
func errorResponse(err error) (int, errorDetail) {
	var he *echo.HTTPError
	var de *db.Error
	switch {
	case errors.As(err, &de):
		status, ok := httpStatus[de.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		return status, errorDetail{Code: string(de.Code), Message: de.Message, Details: de.Details}
	case errors.As(err, &he):
		detail := errorDetail{Code: statusCode(he.Code), Message: http.StatusText(he.Code)}
		if msg, ok := he.Message.(string); ok {
			detail.Message = msg
		}
		return he.Code, detail
	}
	return http.StatusInternalServerError, errorDetail{Code: string(db.CodeInternal), Message: "internal error"}
}

func statusOf(err error) int {
	status, _ := errorResponse(err)
	return status
}

// statusCode names the status of one of echo's own errors in the style of
// the domain's codes: 404 → not_found, 405 → method_not_allowed.
func statusCode(status int) string {
	if status == http.StatusBadRequest {
		return string(db.CodeInvalid)
	}
	return strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}

package server

import (
	"errors"
	"net/http"
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

// httpStatus maps each store error code to its HTTP status, in one place.
var httpStatus = map[db.Code]int{
	db.CodeInvalid:     http.StatusBadRequest,
	db.CodeNotFound:    http.StatusNotFound,
	db.CodeConflict:    http.StatusConflict,
	db.CodeExpired:     http.StatusGone,
	db.CodeLimit:       http.StatusTooManyRequests,
	db.CodeUnavailable: http.StatusServiceUnavailable,
	db.CodeInternal:    http.StatusInternalServerError,
}

// handleError writes every error as errorBody. It unwraps: echo's own
// errors and store errors are found however deeply they are wrapped.
// Internal causes are logged, never sent.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := http.StatusInternalServerError, errorDetail{Code: string(db.CodeInternal), Message: "internal error"}
	var he *echo.HTTPError
	var se *db.Error
	switch {
	case errors.As(err, &se):
		status = httpStatus[se.Code]
		detail = errorDetail{Code: string(se.Code), Message: se.Message}
	case errors.As(err, &he):
		status = he.Code
		detail = errorDetail{Code: statusCode(he.Code), Message: http.StatusText(he.Code)}
		if msg, ok := he.Message.(string); ok {
			detail.Message = msg
		}
	}
	if status >= 500 {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "status", status, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	c.JSON(status, errorBody{Error: detail})
}

// statusCode names an HTTP status in the style of the store's codes:
// 404 → not_found.
func statusCode(status int) string {
	return strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}

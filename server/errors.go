package server

import (
	"errors"
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

// apiError is a refusal of the HTTP layer itself (auth, limits, bodies).
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// rpcStatus maps the dispatcher's WS codes to HTTP statuses.
var rpcStatus = map[string]int{
	codeInvalidRequest: http.StatusBadRequest,
	codeNotPaired:      http.StatusUnauthorized,
	codeUnavailable:    http.StatusServiceUnavailable,
}

// httpStatus maps each store error code to its HTTP status, in one place.
var httpStatus = map[db.Code]int{
	db.CodeInvalid:     http.StatusBadRequest,
	db.CodeNotFound:    http.StatusNotFound,
	db.CodeConflict:    http.StatusConflict,
	db.CodeExpired:     http.StatusGone,
	db.CodeLimit:       http.StatusServiceUnavailable,
	db.CodeUnavailable: http.StatusServiceUnavailable,
	db.CodeInternal:    http.StatusInternalServerError,
}

// handleError writes every error as errorBody. Internal causes are
// logged, never sent.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := errorResponse(err)
	if re := (*rpcError)(nil); errors.As(err, &re) && re.retryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(re.retryAfter.Seconds())))
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

// errorResponse is the one table from errors to statuses and bodies. It
// unwraps: echo's own errors and ours are found however deeply wrapped
// (echo v4's default handler misses wrapped ones).
func errorResponse(err error) (int, errorDetail) {
	var he *echo.HTTPError
	var se *db.Error
	var ae *apiError
	var re *rpcError
	switch {
	case errors.As(err, &ae):
		return ae.Status, errorDetail{Code: ae.Code, Message: ae.Message}
	case errors.As(err, &re):
		status := rpcStatus[re.Code]
		if re.status != 0 {
			status = re.status
		}
		// (legacy) OpenClaw's "Error: " prefix stays on the WebSocket only.
		return status, errorDetail{Code: statusCode(status), Message: strings.TrimPrefix(re.Message, "Error: "), Details: re.Details}
	case errors.As(err, &se):
		return httpStatus[se.Code], errorDetail{Code: string(se.Code), Message: se.Message, Details: se.Details}
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

// statusCode names an HTTP status in the style of the store's codes:
// 404 → not_found. Every 400 is "invalid", the store's code for bad input,
// whichever layer found it.
func statusCode(status int) string {
	if status == http.StatusBadRequest {
		return string(db.CodeInvalid)
	}
	return strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}

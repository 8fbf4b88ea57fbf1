package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The operator page: static files embedded in the binary. It is a frontend
// of the REST API (same origin, the operator token as a Bearer header), so
// it needs no routes of its own beyond its files.
//
//go:embed ui
var uiFS embed.FS

type uiFile struct {
	body  []byte
	ctype string
	etag  string
}

var uiFiles = func() map[string]uiFile {
	types := map[string]string{
		"index.html": "text/html; charset=utf-8",
		"app.js":     "text/javascript; charset=utf-8",
		"app.css":    "text/css; charset=utf-8",
	}
	out := map[string]uiFile{}
	for name, ctype := range types {
		body, err := uiFS.ReadFile("ui/" + name)
		if err != nil {
			panic(err) // the files are embedded at build time
		}
		sum := sha256.Sum256(body)
		out[name] = uiFile{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}()

// uiCSP lets the page load only its own script and style and talk only to
// its own origin; node-supplied text can never run as script.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// handleUI serves /ui/ (index.html) and its two assets; anything else 404.
func handleUI(c echo.Context) error {
	name := c.Param("file")
	if name == "" {
		name = "index.html"
	}
	f, ok := uiFiles[name]
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "the operator page has no file "+name)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(f.body))
	return nil
}

// wantsPage reports a browser's plain navigation (it accepts HTML).
func wantsPage(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

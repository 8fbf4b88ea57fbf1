package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/internal/confusable"
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
	add := func(name string, body []byte) {
		sum := sha256.Sum256(body)
		out[name] = uiFile{body: body, ctype: types[name], etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	for name := range types {
		body, err := uiFS.ReadFile("ui/" + name)
		if err != nil {
			panic(err) // the files are embedded at build time
		}
		add(name, body)
	}
	types["rules.js"] = types["app.js"]
	add("rules.js", rulesJS())
	return out
}()

// rulesJS is the page's rules.js: the tables by which it shows names, made
// from the CLI's (internal/confusable), so that the two cannot drift. It
// defines CONFUSABLE (look-alike letters), INVISIBLE (what visible
// escapes) and KEPT (what it leaves).
func rulesJS() []byte {
	var b bytes.Buffer
	b.WriteString("// Made by the server from internal/confusable, the CLI's rules.\n'use strict';\n")
	table := confusable.Table()
	pairs := make([][2]string, 0, len(table))
	for from, to := range table {
		pairs = append(pairs, [2]string{string(from), string(to)})
	}
	slices.SortFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	js, _ := json.Marshal(pairs)
	fmt.Fprintf(&b, "const CONFUSABLE = new Map(%s);\n", js)
	// Controls, format characters, separators, and Go's table of the
	// other default-ignorable code points (JavaScript has no name for it).
	class := `\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}`
	r16, r32 := unicode.Other_Default_Ignorable_Code_Point.R16, unicode.Other_Default_Ignorable_Code_Point.R32
	ranges := make([]unicode.Range32, 0, len(r16)+len(r32))
	for _, r := range r16 {
		ranges = append(ranges, unicode.Range32{Lo: uint32(r.Lo), Hi: uint32(r.Hi), Stride: uint32(r.Stride)})
	}
	ranges = append(ranges, r32...)
	for _, r := range ranges {
		if r.Stride == 1 {
			class += fmt.Sprintf(`\\u{%x}-\\u{%x}`, r.Lo, r.Hi)
			continue
		}
		for c := r.Lo; c <= r.Hi; c += r.Stride {
			class += fmt.Sprintf(`\\u{%x}`, c)
		}
	}
	fmt.Fprintf(&b, "const INVISIBLE = new RegExp('[%s]', 'gu');\n", class)
	kept, _ := json.Marshal(strings.Split(string(confusable.Kept), ""))
	fmt.Fprintf(&b, "const KEPT = new Set(%s);\n", kept)
	return b.Bytes()
}

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

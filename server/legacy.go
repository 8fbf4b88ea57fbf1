package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
)

// importReadTimeout bounds the upload of an import body, which may hold
// two large files; only an operator gets this far. importWait bounds how
// long an import waits for the one running before it.
const (
	importReadTimeout = 2 * time.Minute
	importWait        = 2 * time.Minute
)

// mirrorEvery bounds how often mirrorLegacyFiles rewrites the files;
// mirrorRetry is the first wait before a failed export is tried again.
// mirrorIdle is how many times as long as an export took the mirror then
// waits, at least, before the next: at 100,000 nodes an export takes
// seconds, and an outside trial saw the mirror rewrite 71 MB back to back
// (0.8 of a core, 29 MB/s written) at one approval every 5 s.
const (
	mirrorEvery = 250 * time.Millisecond
	mirrorIdle  = 4
	mirrorRetry = time.Second
)

// handleExport answers {paired, pending}: the legacy files' two objects.
func (s *Server) handleExport(c echo.Context) error {
	redact, err := boolQuery(c, "redactTokens")
	if err != nil {
		return err
	}
	sn, err := profileOf(c).Store.ExportSnapshot(c.Request().Context(), redact)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	// A client gone mid-answer has its connection closed: nothing to say.
	db.WriteLegacyAnswer(c.Response(), sn, redact)
	return nil
}

// handleImport takes {paired, pending} (each a legacy file's object, either
// may be absent) and answers the import report.
func (s *Server) handleImport(c echo.Context) error {
	dryRun, err := boolQuery(c, "dryRun")
	if err != nil {
		return err
	}
	mode := c.QueryParam("mode")
	// One at a time: an import holds its body and what it parsed of it,
	// several times the body, and a body may be 256 MiB (an outside
	// trial took a server to 2.8 GB with three at once). The next one's
	// body is not read until then.
	wait := time.NewTimer(s.importWait)
	defer wait.Stop()
	select {
	case s.imports <- struct{}{}:
		defer func() { <-s.imports }()
	case <-c.Request().Context().Done():
		return c.Request().Context().Err()
	case <-wait.C:
		return &db.Error{Code: db.CodeRateLimited, RetryAfter: 10 * time.Second,
			Message: fmt.Sprintf("another import has been running on this server for over %s: imports run one at a time; try again when it ends", s.importWait)}
	}
	body, err := readBody(c, 2*db.MaxLegacyFile+4096, importReadTimeout)
	if err != nil {
		return err
	}
	// json.Valid copies nothing; only a body it refuses is read again,
	// strictly, for a message that says where and what (in the words of
	// every other JSON refusal: a path, nesting beyond 64 levels).
	if !json.Valid(body) {
		err := db.CheckJSONObject(body)
		if err == nil {
			err = errors.New("not JSON")
		}
		return apiError(db.CodeInvalid, "invalid JSON body: %s%s", err, formHint(c))
	}
	paired, pending, err := importMembers(body)
	if err != nil {
		return apiError(db.CodeInvalid, "invalid JSON body: %s", err)
	}
	if mode == db.ImportReplace && (paired == nil || pending == nil) {
		// A member left out would count as empty: replace would remove
		// every pairing (or pending request) of the profile.
		missing := "paired"
		if paired != nil {
			missing = "pending"
		}
		return apiError(db.CodeInvalid, `mode=replace makes the profile exactly the body, and it has no %q: that would remove every record of that kind; send both members (an empty one is {})`, missing)
	}
	st, err := db.ReadLegacy(paired, pending)
	if err != nil {
		return err
	}
	rep, err := profileOf(c).Store.Import(c.Request().Context(), st, mode, dryRun, db.Origin{Actor: "import", Source: c.RealIP()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}

// importMembers splits an import body, {"paired": {...}, "pending": {...}}
// (either may be absent), into the two files' bytes. body is valid JSON
// (json.Valid), so only its shape is checked here. The members are
// slices of body, not copies (a body may be 256 MiB): a member's end is
// found by counting brackets outside strings; ReadLegacy reads each
// member once, strictly.
func importMembers(body []byte) (paired, pending []byte, err error) {
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, nil, errors.New(`want {"paired": {...}, "pending": {...}}`)
	}
	for i = skipSpace(body, i+1); body[i] != '}'; {
		keyEnd := jsonValueEnd(body, i)
		var key string
		if keyEnd-i > 64 || json.Unmarshal(body[i:keyEnd], &key) != nil {
			key = "" // no member's name: it is only reported unknown
		}
		start := skipSpace(body, skipSpace(body, keyEnd)+1) // past the colon
		end := jsonValueEnd(body, start)
		switch {
		case key == "paired" && paired == nil:
			paired = body[start:end]
		case key == "pending" && pending == nil:
			pending = body[start:end]
		case key == "paired" || key == "pending":
			return nil, nil, fmt.Errorf("duplicate key %q", key)
		default:
			return nil, nil, fmt.Errorf(`unknown member %s: want {"paired": {...}, "pending": {...}}`, db.ShortQuoted(body[i:keyEnd]))
		}
		if i = skipSpace(body, end); body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return paired, pending, nil
}

// skipSpace is the index of the first byte from i on that is not JSON
// white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonValueEnd is the index just past the value starting at b[i], in
// valid JSON: strings are skipped with their escapes, brackets counted,
// a scalar runs to the next delimiter.
func jsonValueEnd(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			for j++; b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
		case '{', '[':
			depth++
			continue
		case '}', ']':
			depth--
		default:
			if depth > 0 {
				continue
			}
			for j < len(b) && !strings.ContainsRune(" \t\n\r,}]", rune(b[j])) {
				j++
			}
			return j
		}
		if depth == 0 {
			return j + 1
		}
	}
	return len(b)
}

func boolQuery(c echo.Context, name string) (bool, error) {
	switch c.QueryParam(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, apiError(db.CodeInvalid, "%s must be true or false", name)
}

// autoImport brings in the legacy files of a profile whose database was
// just created. The files are never deleted, renamed or written. A file
// that cannot be imported is an error: the profile is not served without
// the pairings its gateway holds.
func autoImport(ctx context.Context, p *Profile, log *slog.Logger) error {
	dir := p.Config.NodesDir()
	st, found, err := db.ReadLegacyDir(dir)
	if err == nil && !found {
		return nil
	}
	var rep db.ImportReport
	if err == nil {
		rep, err = p.Store.Import(ctx, st, db.ImportMerge, false, db.Origin{Actor: "import", Source: "auto"})
	}
	if err != nil {
		return fmt.Errorf("%w: the legacy files in %s cannot be imported, so the profile is not served without them (the files are untouched, and the database just made for them is removed again, migrations and all: the next start tries again): %w; fix them, or move them out of %s to start without them", db.ErrIntegrity, dir, err, dir)
	}
	log.Info("imported legacy files into the new database", "profile", p.Config.Name, "dir", dir,
		"pairedAdded", rep.PairedAdded, "pendingAdded", rep.PendingAdded, "skippedExpired", rep.SkippedExpired,
		"unknownFields", len(rep.UnknownFields))
	return nil
}

// checkLegacyFiles says once, after start, when the legacy files beside
// the database hold pairings it lacks: OpenClaw's files put beside a
// database made first are never imported. The mirror checks the same
// itself. In the background: a file of 100,000 nodes takes a second to
// read (BenchmarkCheckOverwrite), and start need not wait for a warning.
func (s *Server) checkLegacyFiles(ctx context.Context, p *Profile) {
	if err := p.Store.CheckOverwrite(ctx, p.Config.NodesDir()); err != nil && ctx.Err() == nil {
		s.log.Warn("the legacy files beside the database hold pairings it does not", "profile", p.Config.Name, "err", err)
	}
}

// mirror keeps a profile's legacy files current (mirrorLegacyFiles): it
// exports after committed changes, at most every mirrorEvery, and once
// more when stopped. A failed export is tried again (mirrorRetry, then
// up to a minute apart) until one succeeds, changes or not: the files
// must not stay without an acknowledged decision until the next change.
// mirrorPause is the least wait after an export that took took: the
// mirror spends at most a fifth of the time exporting.
func mirrorPause(took time.Duration) time.Duration {
	return max(mirrorEvery, mirrorIdle*took)
}

func (s *Server) mirror(ctx context.Context, p *Profile) {
	var retry <-chan time.Time
	wait := mirrorRetry
	warned := false
	var took time.Duration // by the last export
	export := func() {
		began := time.Now()
		defer func() { took = time.Since(began) }()
		_, unsealable, err := p.Store.MirrorExport(context.WithoutCancel(ctx), p.Config.NodesDir())
		if len(unsealable) > 0 && !warned {
			warned = true
			s.log.Warn("the mirrored paired.json leaves out the nodes whose token pairing.key cannot open (it was replaced); they still verify here", "profile", p.Config.Name, "nodes", len(unsealable))
		}
		if err != nil {
			s.log.Error("mirroring the legacy files failed; trying again", "profile", p.Config.Name, "in", wait, "err", err)
			retry = time.After(wait)
			wait = min(2*wait, time.Minute)
			return
		}
		retry, wait = nil, mirrorRetry
	}
	// At start the files may be OpenClaw's own, never imported (the
	// database was there first): not written over while they hold a
	// pairing the store lacks.
	if err := p.Store.CheckOverwrite(ctx, p.Config.NodesDir()); err != nil {
		s.log.Error("mirrorLegacyFiles is off until the next start: the files would lose pairings", "profile", p.Config.Name, "err", err)
		return
	}
	changed := p.hub.Changed()
	export()
	for {
		select {
		case <-ctx.Done():
			select {
			case <-changed:
				export()
			default:
				if retry != nil {
					export()
				}
			}
			return
		case <-changed:
			export()
		case <-retry:
			export()
		}
		select { // coalesce: the next export waits (mirrorPause)
		case <-ctx.Done():
		case <-time.After(mirrorPause(took)):
		}
	}
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
)

// importReadTimeout bounds the upload of an import body, which may hold
// two large files; only an operator gets this far.
const importReadTimeout = 2 * time.Minute

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
	body, err := readBody(c, 2*db.MaxLegacyFile+4096, importReadTimeout)
	if err != nil {
		return err
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
// (either may be absent), into the two files' bytes without parsing them:
// ReadLegacy validates each once.
func importMembers(body []byte) (paired, pending []byte, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, errors.New(`want {"paired": {...}, "pending": {...}}`)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, errors.New(db.DescribeJSONError(body, err, dec.InputOffset()))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("%v: %s", t, db.DescribeJSONError(body, err, dec.InputOffset()))
		}
		switch {
		case t == "paired" && paired == nil:
			paired = raw
		case t == "pending" && pending == nil:
			pending = raw
		case t == "paired" || t == "pending":
			return nil, nil, fmt.Errorf("duplicate key %q", t)
		default:
			return nil, nil, fmt.Errorf(`unknown member %q: want {"paired": {...}, "pending": {...}}`, t)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, errors.New(db.DescribeJSONError(body, err, dec.InputOffset()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("trailing data after the object")
	}
	return paired, pending, nil
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
		return fmt.Errorf("%w: the legacy files in %s cannot be imported, so the profile is not served without them (nothing was written; the next start tries again): %w; fix them, or move them out of %s to start without them", db.ErrIntegrity, dir, err, dir)
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

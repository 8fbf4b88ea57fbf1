// Package migrations holds the SQL that builds and evolves a profile's
// pairing database. The files are embedded and applied by goose, forward only.
package migrations

import (
	"embed"
	"io/fs"
	"strconv"
	"strings"
)

// FS holds every migration, named NNNNN_what.sql.
//
//go:embed *.sql
var FS embed.FS

// Latest is the newest schema version the migrations reach: the one a
// database has after this binary migrated it.
func Latest() int64 {
	entries, _ := fs.ReadDir(FS, ".")
	var latest int64
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseInt(prefix, 10, 64); err == nil {
			latest = max(latest, v)
		}
	}
	return latest
}

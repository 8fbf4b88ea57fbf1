// Package migrations holds the SQL that builds and evolves a profile's
// pairing database. The files are embedded and applied by goose, forward only.
package migrations

import "embed"

// FS holds every migration, named NNNNN_what.sql.
//
//go:embed *.sql
var FS embed.FS

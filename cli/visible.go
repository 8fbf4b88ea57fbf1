package cli

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/pairgate/pairgate/db"
)

// visible shows the characters db.IsHidden names as escapes (\x1b,
// \u202e), and bytes that are not UTF-8 as \xff. The store refuses them
// now, but data imported before may hold them, and in a terminal they
// would move the cursor, erase or reorder rows, or write the clipboard.
func visible(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, db.IsHidden) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case db.IsHidden(r) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case db.IsHidden(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// visibleLines is visible for each line of a multi-line message.
func visibleLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = visible(l)
	}
	return strings.Join(lines, "\n")
}

// escapeHidden rewrites the hidden characters encoding/json leaves raw in
// its output (DEL, C1, bidi overrides; it escapes C0 itself, and the
// newlines outside strings are its own) as \u escapes, which JSON
// readers decode to the same strings.
func escapeHidden(js []byte) []byte {
	leftRaw := func(r rune) bool { return r >= 0x7f && db.IsHidden(r) }
	if !bytes.ContainsFunc(js, leftRaw) {
		return js
	}
	var b bytes.Buffer
	for _, r := range string(js) {
		if leftRaw(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.Bytes()
}

package cli

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/pairgate/pairgate/internal/confusable"
)

// visible shows what a terminal would act on or a reader could not see
// as escapes (confusable.Visible). The store refuses the worst of them
// now, but data imported before may hold them.
func visible(s string) string {
	return confusable.Visible(s)
}

// visibleLines is visible for each line of a multi-line message.
func visibleLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = visible(l)
	}
	return strings.Join(lines, "\n")
}

// escapeHidden rewrites the invisible characters encoding/json leaves raw
// in its output (DEL, C1, format characters; it escapes C0 itself, and
// the newlines outside strings are its own) as \u escapes, which JSON
// readers decode to the same strings.
func escapeHidden(js []byte) []byte {
	leftRaw := func(r rune) bool { return r >= 0x7f && confusable.Invisible(r) }
	if !bytes.ContainsFunc(js, leftRaw) {
		return js
	}
	var b bytes.Buffer
	for _, r := range string(js) {
		switch {
		case !leftRaw(r):
			b.WriteRune(r)
		case r > 0xffff: // JSON escapes it as its UTF-16 pair
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.Bytes()
}

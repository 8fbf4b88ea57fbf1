package confusable

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Invisible says whether r is shown as an escape where a person reads a
// name: controls (in a terminal they move the cursor, erase rows, write
// the clipboard), format characters (bidi overrides reorder what is read;
// zero-width spaces, soft hyphens, tags and the like show nothing, so
// "Kitchen iPad" and "Kitchen\u00adiPad" look one), line and paragraph
// separators, and the other default-ignorable characters (Hangul fillers,
// the grapheme joiner). Kept: the zero-width joiners (emoji sequences,
// Indic and Persian words) and the direction marks right-to-left names
// need (U+200E, U+200F, U+061C), which cannot reorder strong characters.
// The store refuses the controls and bidi overrides outright
// (db.IsHidden); the rest it keeps, and readers are shown them.
func Invisible(r rune) bool {
	return !slices.Contains(Kept, r) && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point)
}

// Kept are the format characters Invisible leaves as they are.
var Kept = []rune{0x200c, 0x200d, 0x200e, 0x200f, 0x061c}

// Visible shows each Invisible character of s as an escape (\x1b,
// \u202e, \U000e0041), and each byte that is not UTF-8 as \xff. The
// operator page's visible (server/ui/app.js) does the same.
func Visible(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, Invisible) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !Invisible(r):
			b.WriteString(s[i : i+size])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

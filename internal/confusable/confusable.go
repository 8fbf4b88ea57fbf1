// Package confusable tells names apart as a reader does: two names with
// one Skeleton look alike ("Kitchen iPad", "Kitchen іPаd" in Cyrillic
// letters). The operator page's skeleton (server/ui/app.js) follows the
// same rules, with the tables server/ui.go makes from these (rules.js);
// server/ui_test.go holds the two alike.
package confusable

import (
	"maps"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// confusable maps letters that look like a Latin letter or digit, once
// lowercased, to it.
var confusable = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c',
	'т': 't', 'у': 'y', 'х': 'x', 'і': 'l', 'ї': 'l', 'ј': 'j', 'ѕ': 's', 'ԁ': 'd', 'ӏ': 'l', 'һ': 'h',
	'ԛ': 'q', 'ԝ': 'w', 'ү': 'y', 'ь': 'b',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'n', 'ι': 'l', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't',
	'υ': 'u', 'χ': 'x', 'γ': 'y', 'ω': 'w', 'μ': 'u',
	// Latin look-alikes, and digits read as letters
	'ı': 'l', 'i': 'l', 'ɑ': 'a', 'ɡ': 'g', 'ʏ': 'y', '0': 'o', '1': 'l', '|': 'l',
}

// Table is the look-alike map Skeleton uses, for the operator page
// (server/ui.go writes it into the page's rules.js).
func Table() map[rune]rune {
	return maps.Clone(confusable)
}

// Skeleton reduces a name to what a reader can tell apart: compatibility
// forms and accents folded away, letters and digits only, lowercase, and
// each look-alike as the letter it looks like. "Kitchen iPad",
// "kitchen-lpad" and "Kitchen іPаd" (Cyrillic) have one skeleton.
func Skeleton(name string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(name) {
		r = unicode.ToLower(r) // I, then i, reads as l
		if c, ok := confusable[r]; ok {
			r = c
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	s := b.String()
	s = strings.ReplaceAll(s, "rn", "m")
	s = strings.ReplaceAll(s, "vv", "w")
	return s
}

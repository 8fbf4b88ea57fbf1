package db

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// CheckUTF8JSON refuses what encoding/json would read as U+FFFD without
// a word: bytes that are not UTF-8, and a \u escape of a UTF-16
// surrogate that is not half of a pair. Read leniently, two different
// inputs would become the same string (a node id, a name).
func CheckUTF8JSON(data []byte) error {
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("not valid UTF-8 (at byte %d)", i)
	}
	for i := 0; i+1 < len(data); i++ {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			break
		}
		if i += j; i+1 >= len(data) {
			break
		}
		if data[i+1] != 'u' {
			i++ // \\, \" and the other escapes of one character
			continue
		}
		r, ok := hex4(data[i+2:])
		switch {
		case !ok:
			// Malformed: the JSON parser says so.
		case r >= 0xd800 && r < 0xdc00:
			if len(data) >= i+12 && data[i+6] == '\\' && data[i+7] == 'u' {
				if low, ok := hex4(data[i+8:]); ok && low >= 0xdc00 && low < 0xe000 {
					i += 11
					continue
				}
			}
			return fmt.Errorf("a \\u escape of half a UTF-16 surrogate pair, %s, at byte %d: not a character", data[i:i+6], i)
		case r >= 0xdc00 && r < 0xe000:
			return fmt.Errorf("a \\u escape of half a UTF-16 surrogate pair, %s, at byte %d: not a character", data[i:i+6], i)
		}
		i += 5
	}
	return nil
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

package db

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckUTF8JSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"nodeId":"plain é 😀"}`:                 "",
		`{"nodeId":"pair \ud83d\ude00"}`:         "",
		`{"nodeId":"escaped backslash \\ud800"}`: "",
		`{"nodeId":"\u00e9\n\"\\"}`:              "",
		"{\"nodeId\":\"x\xff1\"}":                "not valid UTF-8 (at byte 12)",
		`{"nodeId":"x\ud800"}`:                   `a \u escape of half a UTF-16 surrogate pair, \ud800, at byte 12`,
		`{"nodeId":"x\uDC00y"}`:                  `\uDC00, at byte 12`,
		`{"nodeId":"x\ud800\u0041"}`:             `\ud800, at byte 12`,
		`{"nodeId":"\ud83d"}`:                    `\ud83d, at byte 11`,
	} {
		err := CheckUTF8JSON([]byte(in))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

func FuzzCheckUTF8JSON(f *testing.F) {
	f.Add([]byte(`{"a":"\ud83d\ude00"}`))
	f.Add([]byte(`{"a":"\ud800"}`))
	// What it lets through decodes without a replacement character that
	// the input did not hold itself.
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if CheckUTF8JSON(data) != nil || json.Unmarshal(data, &v) != nil {
			return
		}
		lower := strings.ToLower(string(data))
		if strings.Contains(lower, `\ufffd`) || strings.ContainsRune(lower, utf8.RuneError) {
			return // holds U+FFFD itself
		}
		var walk func(any) bool
		walk = func(v any) bool {
			switch x := v.(type) {
			case string:
				return !strings.ContainsRune(x, utf8.RuneError)
			case []any:
				for _, e := range x {
					if !walk(e) {
						return false
					}
				}
			case map[string]any:
				for k, e := range x {
					if strings.ContainsRune(k, utf8.RuneError) || !walk(e) {
						return false
					}
				}
			}
			return true
		}
		if !walk(v) {
			t.Fatalf("%q passed, and decodes with a replacement character", data)
		}
	})
}

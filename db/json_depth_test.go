package db

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// nested returns depth open brackets of kind ("[" or `{"a":`), closed
// again, padded to no more than size bytes.
func nested(open, closing string, size int) []byte {
	depth := size / (len(open) + len(closing))
	return []byte(strings.Repeat(open, depth) + "0" + strings.Repeat(closing, depth))
}

// allocated is the bytes fn allocates, averaged over a few runs.
func allocated(fn func()) uint64 {
	const runs = 4
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

func TestDeepJSONIsRefusedWithItsPath(t *testing.T) {
	ok := `{"a":` + strings.Repeat("[", MaxJSONDepth-1) + strings.Repeat("]", MaxJSONDepth-1) + "}"
	if err := CheckJSONObject([]byte(ok)); err != nil {
		t.Fatalf("depth %d must be accepted: %v", MaxJSONDepth, err)
	}
	deep := `{"a":{"b":` + strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth) + "}}"
	err := CheckJSONObject([]byte(deep))
	want := `$["a"].b` + strings.Repeat("[0]", MaxJSONDepth-2) + ": nested deeper than 64 levels"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("depth %d: %v\nwant %s", MaxJSONDepth+2, err, want)
	}
	// The same limit holds in the legacy files, in kept unknown fields.
	_, err = ReadLegacy([]byte(`{"n":{"x":`+strings.Repeat("[", 70)+strings.Repeat("]", 70)+`}}`), nil)
	if err == nil || !strings.Contains(err.Error(), `paired.json: $["n"].x[0][0]`) || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Fatalf("deep legacy field: %v", err)
	}
	// Paths are as before for the errors that are not about depth.
	for body, want := range map[string]string{
		`{"params":{"a":1,"a":2}}`:                        `$["params"].a: duplicate key`,
		`{"a":[1,{"b":[true,]}]}`:                         `$["a"][1].b[1]: malformed JSON at line 1, column 20: invalid character ']'`,
		`{"a":{"b":{"c":"x"}}} 1`:                         `$: trailing data after the JSON value`,
		`{"a":{"b":{"c":"x"}`:                             `$["a"]: the JSON ends early (truncated?)`,
		`[{"a":1,"a":2}]`:                                 `$[0].a: duplicate key`,
		`{"x y":{"q\"":{"q":1,"q"`:                        `$["x y"].q".q: duplicate key`,
		`{"n":{"x":[[],[],[[1,]]]}}`:                      `$["n"].x[2][0][1]: malformed JSON`,
		"{\"a\":{\"b\\nc\\u001b\":1,\"b\\nc\\u001b\":2}}": `$["a"]["b\nc\u001b"]: duplicate key`,
	} {
		if err := CheckJSONObject([]byte(body)); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v\nwant %s", body, err, want)
		}
	}
}

// A 64 KiB body of depth ~32,000 (the attack: quadratic memory
// before the limit) is refused at once, allocating less than 16× its size;
// so are long strings. Wide bodies of tiny values are accepted and churn
// more (encoding/json's Decoder.Token allocates per token), but keep
// nothing: a bound of 100× still catches any growth with depth or width.
func TestHostileJSONShapesCostASmallMultipleOfTheirSize(t *testing.T) {
	const size = 64 << 10
	for name, body := range map[string][]byte{
		"arrays":        nested("[", "]", size),
		"objects":       nested(`{"a":`, "}", size),
		"unclosed":      []byte(strings.Repeat("[", size)),
		"wide array":    []byte("{\"a\":[" + strings.Repeat("0,", size/2-8) + "0]}"),
		"wide object":   []byte("{" + wideObject(size) + "}"),
		"long strings":  []byte(`{"a":"` + strings.Repeat("x", size-10) + `"}`),
		"escaped chars": []byte(`{"a":"` + strings.Repeat(`\u0041`, (size-10)/6) + `"}`),
	} {
		var err error
		got := allocated(func() { err = CheckJSONObject(body) })
		t.Logf("%s: %d bytes, allocated %d (%.1f×)", name, len(body), got, float64(got)/float64(len(body)))
		bound := uint64(16)
		if strings.HasPrefix(name, "wide") {
			bound = 100
		}
		if got > bound*uint64(len(body)) {
			t.Errorf("%s: checking %d bytes allocated %d, more than %d× its size", name, len(body), got, bound)
		}
		deep := name == "arrays" || name == "objects" || name == "unclosed"
		if deep != (err != nil && strings.Contains(err.Error(), "nested deeper than 64 levels")) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// wideObject is the members of one object with distinct keys, about size bytes.
func wideObject(size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size-16; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i) + `":0`)
	}
	return b.String()
}

// An 80 KB nested paired.json (the import attack) is refused by
// ReadLegacy with the depth named, within a small multiple of its size.
func TestDeepLegacyFileIsRefused(t *testing.T) {
	file := append([]byte(`{"n1":`), nested(`{"a":`, "}", 80_000)...)
	file = append(file, '}')
	var err error
	got := allocated(func() { _, err = ReadLegacy(file, nil) })
	if err == nil || ErrorCode(err) != CodeInvalid || !strings.Contains(err.Error(), `paired.json: $["n1"].a.a.a`) || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Fatalf("80 KB nested paired.json: %v", err)
	}
	if got > 16*uint64(len(file)) {
		t.Fatalf("refusing %d bytes allocated %d", len(file), got)
	}
}

// NodeList.WriteJSON (REST's GET …/nodes, written entry by entry) writes
// what json.Marshal does, byte for byte, with the encoder's newline.
func TestNodeListWritesWhatMarshalDoes(t *testing.T) {
	for _, l := range []NodeList{
		{TS: 1},
		{TS: 2, Nodes: []NodeEntry{}},
		{TS: 1795627040011, Nodes: []NodeEntry{
			{NodeID: "a<b>&c", NodeMeta: NodeMeta{DisplayName: "Küche \u2028 \"iPad\"", Caps: []string{}, Permissions: Permissions{{Name: "<camera>", Granted: true}, {Name: "1", Granted: false}}}, Paired: true},
			{NodeID: "n2", ConnectedAtMs: 5, Paired: true, Connected: true},
		}},
	} {
		var got bytes.Buffer
		if err := l.WriteJSON(&got); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(l)
		if got.String() != string(want)+"\n" {
			t.Errorf("WriteJSON\n%s\nwant\n%s", got.String(), want)
		}
	}
}

package db

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jvalue is a parsed JSON value that keeps object members in file order
// and numbers as written: what the legacy files need to be read strictly
// and written back exactly.
type jvalue struct {
	kind jkind
	obj  []jmember
	arr  []jvalue
	str  string
	num  json.Number
	b    bool
}

type jkind int

const (
	jNull jkind = iota
	jObject
	jArray
	jString
	jNumber
	jBool
)

func (k jkind) String() string {
	return [...]string{"null", "object", "array", "string", "number", "boolean"}[k]
}

type jmember struct {
	name  string
	value jvalue
}

// parseJSON reads exactly one JSON value. Duplicate keys and trailing data
// are errors; the error says where.
func parseJSON(data []byte) (jvalue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, "$")
	if err != nil {
		return v, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, fmt.Errorf("$: trailing data after the JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, path string) (jvalue, error) {
	t, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return jvalue{}, fmt.Errorf("%s: the JSON ends early (truncated?)", path)
		}
		return jvalue{}, fmt.Errorf("%s: malformed JSON near offset %d: %v", path, dec.InputOffset(), strings.TrimPrefix(err.Error(), "json: "))
	}
	switch x := t.(type) {
	case json.Delim:
		if x == '{' {
			return parseObject(dec, path)
		}
		return parseArray(dec, path)
	case string:
		return jvalue{kind: jString, str: x}, nil
	case json.Number:
		return jvalue{kind: jNumber, num: x}, nil
	case bool:
		return jvalue{kind: jBool, b: x}, nil
	}
	return jvalue{kind: jNull}, nil
}

func parseObject(dec *json.Decoder, path string) (jvalue, error) {
	v := jvalue{kind: jObject}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return v, fmt.Errorf("%s: malformed JSON near offset %d", path, dec.InputOffset())
		}
		name := t.(string)
		at := memberPath(path, name)
		if seen[name] {
			return v, fmt.Errorf("%s: duplicate key", at)
		}
		seen[name] = true
		mv, err := parseValue(dec, at)
		if err != nil {
			return v, err
		}
		v.obj = append(v.obj, jmember{name: name, value: mv})
	}
	if _, err := dec.Token(); err != nil {
		return v, fmt.Errorf("%s: the JSON ends early (truncated?)", path)
	}
	return v, nil
}

func parseArray(dec *json.Decoder, path string) (jvalue, error) {
	v := jvalue{kind: jArray}
	for i := 0; dec.More(); i++ {
		item, err := parseValue(dec, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return v, err
		}
		v.arr = append(v.arr, item)
	}
	if _, err := dec.Token(); err != nil {
		return v, fmt.Errorf("%s: the JSON ends early (truncated?)", path)
	}
	return v, nil
}

// memberPath names an object member the way reports do: $["node-a"].ts
// for map keys at the top, .name below.
func memberPath(path, name string) string {
	if path == "$" {
		b, _ := json.Marshal(name)
		return "$[" + string(b) + "]"
	}
	return path + "." + name
}

// CheckJSONObject reports whether data is exactly one JSON object, with no
// key twice in any object and nothing after it; the error names the path.
func CheckJSONObject(data []byte) error {
	v, err := parseJSON(data)
	if err == nil && v.kind != jObject {
		err = fmt.Errorf("$: want a JSON object, got %s", v.kind)
	}
	return err
}

// eachMember streams a top-level JSON object: each member's value is
// parsed (records are small) and handed to fn, then dropped, so a large
// file never becomes one large tree. Duplicate keys and trailing data are
// errors; a value that is not an object at the top is reported as kind.
func eachMember(data []byte, fn func(name string, v jvalue)) (top jkind, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		if _, perr := parseJSON(data); perr != nil {
			return jNull, perr
		}
		return jNull, fmt.Errorf("$: malformed JSON")
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		v, err := parseJSON(data)
		return v.kind, err
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return jObject, fmt.Errorf("$: malformed JSON near offset %d", dec.InputOffset())
		}
		name := t.(string)
		at := memberPath("$", name)
		if seen[name] {
			return jObject, fmt.Errorf("%s: duplicate key", at)
		}
		seen[name] = true
		v, err := parseValue(dec, at)
		if err != nil {
			return jObject, err
		}
		fn(name, v)
	}
	if _, err := dec.Token(); err != nil {
		return jObject, fmt.Errorf("$: the JSON ends early (truncated?)")
	}
	if _, err := dec.Token(); err != io.EOF {
		return jObject, fmt.Errorf("$: trailing data after the JSON value")
	}
	return jObject, nil
}

// textWriter is what the JSON writers write to: a bytes.Buffer, or a
// bufio.Writer on a file.
type textWriter interface {
	WriteByte(byte) error
	WriteString(string) (int, error)
}

// writeObjectStream writes a top-level object of n members the way
// JSON.stringify(v, null, 2) would, building one member's tree at a time.
func writeObjectStream(b textWriter, n int, member func(i int) (string, jvalue)) {
	if n == 0 {
		b.WriteString("{}")
		return
	}
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		name, v := member(i)
		writeJSString(b, name)
		b.WriteString(": ")
		v.write(b, 1)
	}
	b.WriteString("\n}")
}

// compact writes v as compact JSON (for keeping unknown fields verbatim).
func (v jvalue) compact() json.RawMessage {
	var b bytes.Buffer
	v.write(&b, -1)
	return b.Bytes()
}

// write emits v; depth < 0 means compact.
func (v jvalue) write(b textWriter, depth int) {
	newline := func(d int) {
		if depth >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat("  ", d))
		}
	}
	next := depth + 1
	if depth < 0 {
		next = -1
	}
	switch v.kind {
	case jNull:
		b.WriteString("null")
	case jBool:
		b.WriteString(strconv.FormatBool(v.b))
	case jNumber:
		b.WriteString(v.num.String())
	case jString:
		writeJSString(b, v.str)
	case jArray:
		if len(v.arr) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, item := range v.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			newline(next)
			item.write(b, next)
		}
		newline(depth)
		b.WriteByte(']')
	case jObject:
		if len(v.obj) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteByte('{')
		for i, m := range v.obj {
			if i > 0 {
				b.WriteByte(',')
			}
			newline(next)
			writeJSString(b, m.name)
			b.WriteByte(':')
			if depth >= 0 {
				b.WriteByte(' ')
			}
			m.value.write(b, next)
		}
		newline(depth)
		b.WriteByte('}')
	}
}

// writeJSString escapes as JSON.stringify: \" \\ \b \f \n \r \t, other
// controls as \u00xx (lowercase), everything else raw — including /, <, >,
// &, U+2028 and U+2029, which Go's encoder would escape.
func writeJSString(b textWriter, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
		i++
	}
	b.WriteByte('"')
}

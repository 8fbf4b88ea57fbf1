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

// MaxJSONDepth bounds the nesting of every JSON document pairgate reads
// (REST bodies, legacy files, kept fields): deeper input is refused before
// it costs more than its own size.
const MaxJSONDepth = 64

// jparser reads JSON tokens into jvalues, or with build false only checks
// them (duplicate keys, depth, syntax) without keeping anything.
type jparser struct {
	dec   *json.Decoder
	data  []byte // what dec reads: a syntax error's line and column
	build bool
}

func newJParser(data []byte, build bool) *jparser {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return &jparser{dec: dec, data: data, build: build}
}

// syntaxError describes a token the decoder refused: where (line and
// column, as an editor shows them) and what, with a hint for the slips
// a hand edit makes.
func (p *jparser) syntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return jerrorf("the JSON ends early (truncated?)")
	}
	return jerrorf("%s", DescribeJSONError(p.data, err, p.dec.InputOffset()))
}

// DescribeJSONError says where in data a JSON decoder's err happened
// (line and column; offset when err carries none) and what went wrong,
// with a hint for a comment, a trailing comma, single quotes or a byte
// order mark.
func DescribeJSONError(data []byte, err error, offset int64) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		offset = se.Offset
	}
	offset = max(0, min(offset, int64(len(data))))
	msg := strings.TrimPrefix(err.Error(), "json: ")
	// Decode's offsets can stop one byte short of the character it
	// names; the column is the character's.
	if lit, ok := strings.CutPrefix(msg, "invalid character '"); ok && len(lit) >= 2 {
		c := byte(0)
		switch {
		case strings.HasPrefix(lit, `\''`):
			c = '\''
		case lit[1] == '\'':
			c = lit[0]
		}
		if c != 0 && offset+1 < int64(len(data)) && data[offset] != c && data[offset+1] == c {
			offset++
		}
	}
	line := 1 + bytes.Count(data[:offset], []byte{'\n'})
	col := 1 + utf8.RuneCount(data[bytes.LastIndexByte(data[:offset], '\n')+1:offset]) // offset is at the refused character
	hint := ""
	switch {
	case bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) && offset <= 4:
		hint = " (the file starts with a byte order mark: save it as UTF-8 without one)"
	case strings.Contains(msg, "invalid character '/'"):
		hint = " (JSON has no comments)"
	case strings.Contains(msg, `invalid character '\''`):
		hint = " (JSON strings and keys take double quotes)"
	case strings.Contains(msg, "invalid character '}' looking for beginning of object key string"),
		strings.Contains(msg, "invalid character ']' looking for beginning of value"):
		hint = " (a comma before it, after the last item?)"
	case strings.Contains(msg, "looking for beginning of object key string"):
		hint = " (keys take double quotes)"
	case strings.Contains(msg, "after object key:value pair"), strings.Contains(msg, "after array element"):
		hint = " (a comma missing before it?)"
	}
	return fmt.Sprintf("malformed JSON at line %d, column %d: %s%s", line, col, msg, hint)
}

// jsonError is a parse error. Its path is collected step by step while the
// error returns through the nesting, so a path is built only for an error.
type jsonError struct {
	steps []jstep // innermost first
	msg   string
}

// jstep is an object member's name or, with index >= 0, an array index.
type jstep struct {
	name  string
	index int
}

// Error names the path the way reports do: $["node-a"].ts for members of
// the top-level object, .name below, [i] for array items.
func (e *jsonError) Error() string {
	var b strings.Builder
	b.WriteString("$")
	for i := len(e.steps) - 1; i >= 0; i-- {
		switch s := e.steps[i]; {
		case s.index >= 0:
			fmt.Fprintf(&b, "[%d]", s.index)
		case i == len(e.steps)-1:
			b.WriteString(memberPath(s.name)[1:])
		default:
			b.WriteString(childPath("", s.name))
		}
	}
	return b.String() + ": " + e.msg
}

func jerrorf(format string, args ...any) error {
	return &jsonError{msg: fmt.Sprintf(format, args...)}
}

// within adds the step through which err came up.
func within(err error, step jstep) error {
	if e, ok := err.(*jsonError); ok {
		e.steps = append(e.steps, step)
	}
	return err
}

// parseJSON reads exactly one JSON value. Duplicate keys, nesting deeper
// than MaxJSONDepth and trailing data are errors; the error says where.
func parseJSON(data []byte) (jvalue, error) {
	p := newJParser(data, true)
	v, err := p.value(0)
	if err == nil {
		err = p.end()
	}
	return v, err
}

// end checks that nothing follows the value.
func (p *jparser) end() error {
	if _, err := p.dec.Token(); err != io.EOF {
		return jerrorf("trailing data after the JSON value")
	}
	return nil
}

// value reads one value found inside depth open containers.
func (p *jparser) value(depth int) (jvalue, error) {
	t, err := p.dec.Token()
	if err != nil {
		return jvalue{}, p.syntaxError(err)
	}
	switch x := t.(type) {
	case json.Delim:
		if depth >= MaxJSONDepth {
			return jvalue{}, jerrorf("nested deeper than %d levels; pairgate refuses deeper JSON", MaxJSONDepth)
		}
		if x == '{' {
			return p.members(depth+1, nil)
		}
		return p.array(depth + 1)
	case string:
		return jvalue{kind: jString, str: x}, nil
	case json.Number:
		return jvalue{kind: jNumber, num: x}, nil
	case bool:
		return jvalue{kind: jBool, b: x}, nil
	}
	return jvalue{kind: jNull}, nil
}

// members reads an object whose '{' was read, handing each member to
// member (when not nil) instead of keeping it.
func (p *jparser) members(depth int, member func(name string, v jvalue)) (jvalue, error) {
	v := jvalue{kind: jObject}
	seen := map[string]bool{}
	for p.dec.More() {
		t, err := p.dec.Token()
		if err != nil {
			return v, p.syntaxError(err)
		}
		name := t.(string)
		if seen[name] {
			return v, within(jerrorf("duplicate key"), jstep{name: name, index: -1})
		}
		seen[name] = true
		mv, err := p.value(depth)
		if err != nil {
			return v, within(err, jstep{name: name, index: -1})
		}
		switch {
		case member != nil:
			member(name, mv)
		case p.build:
			v.obj = append(v.obj, jmember{name: name, value: mv})
		}
	}
	if _, err := p.dec.Token(); err != nil {
		return v, p.syntaxError(err)
	}
	return v, nil
}

func (p *jparser) array(depth int) (jvalue, error) {
	v := jvalue{kind: jArray}
	for i := 0; p.dec.More(); i++ {
		item, err := p.value(depth)
		if err != nil {
			return v, within(err, jstep{index: i})
		}
		if p.build {
			v.arr = append(v.arr, item)
		}
	}
	if _, err := p.dec.Token(); err != nil {
		return v, p.syntaxError(err)
	}
	return v, nil
}

// memberPath names a member of the top-level object the way reports do:
// $["node-a"].
func memberPath(name string) string {
	return "$[" + quotedName(name) + "]"
}

// quotedName is name as a JSON string, only its start when it is long:
// a report names a key in every problem of its record, and a key may be
// megabytes (an outside trial printed a 100,123-byte error).
func quotedName(name string) string {
	b, _ := json.Marshal(name)
	return ShortQuoted(b)
}

// ShortQuoted shows a JSON string (quoted, as written) whole when short,
// else by its first 64 bytes and its length: "kkk…" (100002 bytes).
func ShortQuoted(quoted []byte) string {
	const keep = 64
	if len(quoted) <= keep+16 {
		return string(quoted)
	}
	cut := keep
	for cut > 1 && !utf8.RuneStart(quoted[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…\" (%d bytes)", quoted[:cut], len(quoted))
}

// childPath names member name below path: .name, or ["name"] quoted
// when the name holds characters (a newline, ESC) that would break or
// rewrite the line of a report.
func childPath(path, name string) string {
	if strings.ContainsFunc(name, IsHidden) || len(name) > 80 {
		return path + "[" + quotedName(name) + "]"
	}
	return path + "." + name
}

// CheckJSONObject reports whether data is exactly one JSON object, with no
// key twice in any object, no nesting deeper than MaxJSONDepth and nothing
// after it; the error names the path. It keeps nothing of data, so its
// memory stays a small multiple of len(data) whatever the shape.
func CheckJSONObject(data []byte) error {
	if QuickObject(data, nil) {
		return nil
	}
	return checkJSONObjectStrictly(data)
}

// checkJSONObjectStrictly is CheckJSONObject token by token: slower, and
// it says what is wrong and where.
func checkJSONObjectStrictly(data []byte) error {
	p := newJParser(data, false)
	v, err := p.value(0)
	if err == nil {
		err = p.end()
	}
	if err == nil && v.kind != jObject {
		err = fmt.Errorf("$: want a JSON object, got %s", v.kind)
	}
	return err
}

// eachMember streams a top-level JSON object: each member's value is
// parsed (records are small) and handed to fn, then dropped, so a large
// file never becomes one large tree. Duplicate keys, deep nesting and
// trailing data are errors; a value that is not an object at the top is
// reported as kind.
func eachMember(data []byte, fn func(name string, v jvalue)) (top jkind, err error) {
	p := newJParser(data, true)
	t, err := p.dec.Token()
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
	if _, err := p.members(1, fn); err != nil {
		return jObject, err
	}
	return jObject, p.end()
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

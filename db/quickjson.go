package db

import "encoding/json"

// QuickObject is the fast way past CheckJSONObject (which tries it first)
// for the input that passes it, which is nearly all: one pass, no tokens,
// no allocation for a small document. It returns true only when data is one JSON object with
// no key twice in any object and no nesting deeper than MaxJSONDepth, and
// top (when not nil) accepted each top-level member, given its key and
// its value as written. False means "not certain": call CheckJSONObject
// for the verdict and its error. Keys written with escapes are left to
// CheckJSONObject (they may equal another key once unescaped).
func QuickObject(data []byte, top func(key, value []byte) bool) bool {
	if !json.Valid(data) {
		return false
	}
	q := quickScan{data: data}
	q.space()
	if q.i >= len(q.data) || q.data[q.i] != '{' {
		return false
	}
	if !q.object(0, top) {
		return false
	}
	q.space()
	return q.i == len(q.data)
}

// quickScan walks JSON that json.Valid accepted, so it checks only what
// Valid does not: duplicate keys and depth.
type quickScan struct {
	data []byte
	i    int
}

func (q *quickScan) space() {
	for q.i < len(q.data) {
		switch q.data[q.i] {
		case ' ', '\t', '\n', '\r':
			q.i++
		default:
			return
		}
	}
}

// str skips a string at q.i and returns its contents, and whether it
// holds an escape.
func (q *quickScan) str() ([]byte, bool) {
	start := q.i + 1
	escaped := false
	for j := start; j < len(q.data); j++ {
		switch q.data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			q.i = j + 1
			return q.data[start:j], escaped
		}
	}
	q.i = len(q.data)
	return nil, true
}

// value skips one value opened at depth containers.
func (q *quickScan) value(depth int) bool {
	q.space()
	if q.i >= len(q.data) {
		return false
	}
	switch q.data[q.i] {
	case '{':
		return depth < MaxJSONDepth-1 && q.object(depth+1, nil)
	case '[':
		return depth < MaxJSONDepth-1 && q.array(depth+1)
	case '"':
		q.str()
		return true
	}
	for q.i < len(q.data) {
		switch q.data[q.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return true
		}
		q.i++
	}
	return true
}

func (q *quickScan) object(depth int, top func(key, value []byte) bool) bool {
	q.i++ // {
	var small [16][]byte
	keys := small[:0]
	var many map[string]bool
	for {
		q.space()
		if q.data[q.i] == '}' {
			q.i++
			return true
		}
		if q.data[q.i] == ',' {
			q.i++
			q.space()
		}
		key, escaped := q.str()
		if escaped {
			return false
		}
		if many != nil {
			if many[string(key)] {
				return false
			}
			many[string(key)] = true
		} else {
			for _, k := range keys {
				if string(k) == string(key) {
					return false
				}
			}
			if keys = append(keys, key); len(keys) > len(small) {
				many = make(map[string]bool, 2*len(keys))
				for _, k := range keys {
					many[string(k)] = true
				}
			}
		}
		q.space()
		q.i++ // :
		q.space()
		start := q.i
		if !q.value(depth) {
			return false
		}
		if top != nil && !top(key, q.data[start:q.i]) {
			return false
		}
	}
}

func (q *quickScan) array(depth int) bool {
	q.i++ // [
	for {
		q.space()
		switch q.data[q.i] {
		case ']':
			q.i++
			return true
		case ',':
			q.i++
		}
		if !q.value(depth) {
			return false
		}
	}
}

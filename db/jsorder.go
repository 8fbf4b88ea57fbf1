package db

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// JavaScript objects keep their members in insertion order, except that
// keys which are array indices (canonical integers 0 … 2^32-2) come first,
// ascending. JSON.stringify writes them in that order, so OpenClaw's files
// and frames do too; pairgate keeps every object it stores in that order to
// write the same bytes.

// isArrayIndex reports whether JavaScript treats key as an array index.
func isArrayIndex(key string) bool {
	if key == "" || len(key) > 10 || (len(key) > 1 && key[0] == '0') {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < '0' || key[i] > '9' {
			return false
		}
	}
	n, err := strconv.ParseUint(key, 10, 64)
	return err == nil && n <= 1<<32-2
}

// jsKeyCompare orders two keys as a JavaScript object does: array indices
// before other keys and among themselves ascending; any two other keys are
// equal here (they keep insertion order, which the caller decides).
func jsKeyCompare(a, b string) int {
	ia, ib := isArrayIndex(a), isArrayIndex(b)
	switch {
	case ia && ib:
		na, _ := strconv.ParseUint(a, 10, 64)
		nb, _ := strconv.ParseUint(b, 10, 64)
		return cmpInt(int64(na), int64(nb))
	case ia:
		return -1
	case ib:
		return 1
	}
	return 0
}

// jsOrder puts items in the order a JavaScript object would hold them,
// given their keys in insertion order. It sorts in place and returns items.
func jsOrder[T any](items []T, key func(T) string) []T {
	slices.SortStableFunc(items, func(a, b T) int { return jsKeyCompare(key(a), key(b)) })
	return items
}

// Permission is one member of a node's permissions object.
type Permission struct {
	Name    string
	Granted bool
}

// Permissions is a node's permissions object ({"camera": true, …}) with its
// members in JavaScript order (see jsOrder), so that it is written back as
// OpenClaw would write it. A nil Permissions is absent; an empty one is {}.
type Permissions []Permission

// MarshalJSON writes the object in p's order.
func (p Permissions) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, x := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(x.Name)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteString(":" + strconv.FormatBool(x.Granted))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of booleans, keeping its members' order
// (then putting it in JavaScript order). Duplicate names are refused.
func (p *Permissions) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == nil {
		*p = nil
		return nil
	}
	if t != json.Delim('{') {
		return errors.New("permissions: want an object of booleans")
	}
	out := Permissions{}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		var granted bool
		if err := dec.Decode(&granted); err != nil {
			return fmt.Errorf("permissions.%s: want a boolean", name)
		}
		if seen[name] {
			return fmt.Errorf("permissions: duplicate key %q", name)
		}
		seen[name] = true
		out = append(out, Permission{Name: name, Granted: granted})
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*p = jsOrder(out, func(x Permission) string { return x.Name })
	return nil
}

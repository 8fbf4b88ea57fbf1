package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/pairgate/pairgate/db"
)

// Kind is a parameter's JSON type in a Schema.
type Kind int

const (
	String      Kind = iota // non-empty string
	AnyString               // any string
	StringList              // list of non-empty strings
	Bool                    //
	Int                     // integer ≥ 1
	Permissions             // object of booleans
	Object                  // nested schema (see Field.Sub)
	Any                     // any JSON value, not looked into
)

// Field is one member of a params object.
type Field struct {
	Name     string
	Kind     Kind
	Required bool
	Sub      Schema // for Object
}

// Schema describes a params object: its fields, in order, and nothing else.
type Schema []Field

// Check validates raw against the schema and reports the first problem in
// the wording of OpenClaw's validator ("must have required property 'x'",
// "at root: unexpected property 'x'", "at /caps/0: must NOT have fewer
// than 1 characters"), so messages match what its clients know.
func (sc Schema) Check(raw json.RawMessage) error {
	if sc.plainlyValid(raw) {
		return nil
	}
	return sc.checkAt("", raw)
}

// plainlyValid is the fast way past Check for the params nearly every
// call sends: one object (db.QuickObject: valid, no key twice) of known
// keys, every required one present, and each value plainly of its kind
// (a string, non-empty where it must be; true or false; anything for
// Any). It reads raw once and allocates nothing. Anything else, valid or
// not, goes the way that names the problem (checkAt).
func (sc Schema) plainlyValid(raw json.RawMessage) bool {
	required := 0
	for _, f := range sc {
		if f.Required {
			required++
		}
	}
	seen := 0
	ok := db.QuickObject(raw, func(key, value []byte) bool {
		i := slices.IndexFunc(sc, func(f Field) bool { return f.Name == string(key) })
		if i < 0 {
			return false
		}
		f := sc[i]
		if f.Required {
			seen++
		}
		switch f.Kind {
		case String:
			return value[0] == '"' && len(value) > 2
		case AnyString:
			return value[0] == '"'
		case Bool:
			return string(value) == "true" || string(value) == "false"
		case Any:
			return true
		}
		return false
	})
	return ok && seen == required
}

func (sc Schema) checkAt(path string, raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		raw = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return pathError(path, "must be object")
	}
	for _, f := range sc {
		if _, ok := obj[f.Name]; f.Required && !ok {
			if path == "" {
				return fmt.Errorf("must have required property '%s'", f.Name)
			}
			return pathError(path, fmt.Sprintf("must have required property '%s'", f.Name))
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.ContainsFunc(sc, func(f Field) bool { return f.Name == k }) {
			at := path
			if at == "" {
				at = "root"
			}
			return fmt.Errorf("at %s: unexpected property '%s'", at, k)
		}
	}
	for _, f := range sc {
		v, ok := obj[f.Name]
		if !ok {
			continue
		}
		if err := f.checkValue(path+"/"+f.Name, v); err != nil {
			return err
		}
	}
	return nil
}

func pathError(path, msg string) error {
	if path == "" {
		return errors.New(msg)
	}
	return fmt.Errorf("at %s: %s", path, msg)
}

func (f Field) checkValue(path string, v json.RawMessage) error {
	switch f.Kind {
	case String, AnyString:
		var s string
		if json.Unmarshal(v, &s) != nil || v[0] != '"' {
			return pathError(path, "must be string")
		}
		if f.Kind == String && s == "" {
			return pathError(path, "must NOT have fewer than 1 characters")
		}
	case StringList:
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil || v[0] != '[' {
			return pathError(path, "must be array")
		}
		for i, item := range items {
			if err := (Field{Kind: String}).checkValue(fmt.Sprintf("%s/%d", path, i), item); err != nil {
				return err
			}
		}
	case Bool:
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return pathError(path, "must be boolean")
		}
	case Int:
		// Digits only: the value is decoded into a Go integer, and an
		// outside trial's 4e0 (an integer to JSON Schema) passed here,
		// then was refused in the decoder's words, naming Go types.
		var n int64
		if json.Unmarshal(v, &n) != nil {
			// Digits too many for an int64 are an integer still, only
			// too large (a re-trial: 23 digits read "must be integer").
			if digits := strings.TrimPrefix(string(v), "-"); digits != "" && strings.Trim(digits, "0123456789") == "" {
				if strings.HasPrefix(string(v), "-") {
					return pathError(path, "must be >= 1")
				}
				return pathError(path, fmt.Sprintf("must be <= %d", int64(math.MaxInt64)))
			}
			return pathError(path, "must be integer")
		}
		if n < 1 {
			return pathError(path, "must be >= 1")
		}
	case Permissions:
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) != nil || m == nil {
			return pathError(path, "must be object")
		}
		for k, b := range m {
			if err := (Field{Kind: Bool}).checkValue(path+"/"+k, b); err != nil {
				return err
			}
		}
	case Object:
		return f.Sub.checkAt(path, v)
	}
	return nil
}

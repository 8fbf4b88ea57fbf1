package rpc

import (
	"encoding/json"
	"slices"
	"testing"
)

// schemaSamples are params of every shape: plain ones the fast path
// takes, and ones only the full check can judge.
var schemaSamples = []string{
	``, `null`, `{}`, ` { } `, `[]`, `"x"`, `{"nodeId":"n1"}`, `{"nodeId":""}`,
	`{"nodeId":"n1","token":"t"}`, `{ "nodeId" : "n1" , "token" : "t" }`,
	`{"nodeId":"n1","token":""}`, `{"nodeId":null}`, `{"nodeId":1}`,
	`{"nodeId":"n1","nodeId":"n2"}`, `{"node\u0049d":"n1"}`, `{"nodeId":"\u0000"}`,
	`{"requestId":"r1"}`, `{"requestId":"r1","displayName":""}`,
	`{"requestId":"r1","displayName":"kitchen"}`, `{"deviceId":"d","label":""}`,
	`{"nodeId":"n1","silent":true}`, `{"nodeId":"n1","silent":null}`,
	`{"nodeId":"n1","silent":"yes"}`, `{"nodeId":"n1","caps":["a"]}`,
	`{"nodeId":"n1","caps":[""]}`, `{"nodeId":"n1","permissions":{"a":true}}`,
	`{"nodeId":"n1","extra":1}`, `{"nodeId":"n1","displayName":"x"}`,
	`{"nodeId":"n1"`, `{"nodeId":"n1"} x`,
}

// checkBoth fails when the fast path passes params the full check refuses.
func checkBoth(t *testing.T, sc Schema, raw string) {
	t.Helper()
	fast := sc.plainlyValid(json.RawMessage(raw))
	full := sc.checkAt("", json.RawMessage(raw))
	if fast && full != nil {
		t.Fatalf("%s: the fast path passes what the full check refuses: %v", raw, full)
	}
	if got := sc.Check(json.RawMessage(raw)); (got == nil) != (full == nil) || got != nil && got.Error() != full.Error() {
		t.Fatalf("%s: Check = %v, the full check %v", raw, got, full)
	}
}

func TestSchemaFastPathAgreesWithTheFullCheck(t *testing.T) {
	took := 0
	for _, m := range methods {
		for _, raw := range schemaSamples {
			checkBoth(t, m.params, raw)
			if m.params.plainlyValid(json.RawMessage(raw)) {
				took++
			}
		}
	}
	// The fast path must be taken at all: verify's plain params.
	if !methods["node.pair.verify"].params.plainlyValid(json.RawMessage(`{"nodeId":"n1","token":"t"}`)) || took == 0 {
		t.Fatal("the fast path takes nothing")
	}
}

func FuzzSchemaFastPath(f *testing.F) {
	for _, raw := range schemaSamples {
		f.Add(raw)
	}
	names := make([]string, 0, len(methods))
	for name := range methods {
		names = append(names, name)
	}
	slices.Sort(names)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, name := range names {
			checkBoth(t, methods[name].params, raw)
		}
	})
}

// An outside trial: "maxProtocol":4e0 passed the integer check and was
// then refused by the decoder, in words naming Go's types. An integer is
// written in digits; anything else is refused by the schema, by path.
func TestIntegersAreDigits(t *testing.T) {
	sc := Schema{{Name: "n", Kind: Int, Required: true}}
	for raw, want := range map[string]string{
		`{"n":4}`:                     "",
		`{"n":4e0}`:                   "at /n: must be integer",
		`{"n":4.0}`:                   "at /n: must be integer",
		`{"n":1.5}`:                   "at /n: must be integer",
		`{"n":99999999999999999999}`:  "at /n: must be <= 9223372036854775807",
		`{"n":-99999999999999999999}`: "at /n: must be >= 1",
		`{"n":0}`:                     "at /n: must be >= 1",
	} {
		got := ""
		if err := sc.Check(json.RawMessage(raw)); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%s: %q, want %q", raw, got, want)
		}
	}
}

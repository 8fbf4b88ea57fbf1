package db

import (
	"strings"
	"testing"
)

var quickCases = []struct {
	in   string
	sure bool // QuickObject vouches for it
}{
	{`{}`, true},
	{` {"a":1,"b":[1,2,{"c":null}],"d":"x\"y"} `, true},
	{`{"type":"req","id":"1","method":"m","params":{"nodeId":"n"}}`, true},
	{`{"a":1,"a":2}`, false},
	{`{"a":{"b":1,"b":2}}`, false},
	{`[{"a":1}]`, false},
	{`{"a":1} x`, false},
	{`{"a":1`, false},
	{`{"\u0061":1,"a":2}`, false}, // an escaped key: left to CheckJSONObject
	{`"x"`, false},
	{strings.Repeat(`{"a":`, MaxJSONDepth) + `1` + strings.Repeat(`}`, MaxJSONDepth), true},
	{strings.Repeat(`{"a":`, MaxJSONDepth+1) + `1` + strings.Repeat(`}`, MaxJSONDepth+1), false},
	{`{"a":` + strings.Repeat(`[`, MaxJSONDepth-1) + strings.Repeat(`]`, MaxJSONDepth-1) + `}`, true},
	{`{"a":` + strings.Repeat(`[`, MaxJSONDepth) + strings.Repeat(`]`, MaxJSONDepth) + `}`, false},
	{`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":0,"k11":1,"k12":2,"k13":3,"k14":4,"k15":5,"k16":6,"k17":7}`, true},
	{`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":0,"k11":1,"k12":2,"k13":3,"k14":4,"k15":5,"k16":6,"k2":7}`, false},
}

func TestQuickObjectAgreesWithTheStrictCheck(t *testing.T) {
	for _, c := range quickCases {
		sure := QuickObject([]byte(c.in), nil)
		if sure != c.sure {
			t.Errorf("QuickObject(%.60q) = %v, want %v", c.in, sure, c.sure)
		}
		if err := checkJSONObjectStrictly([]byte(c.in)); sure && err != nil {
			t.Errorf("QuickObject vouched for %.60q, which the strict check refuses: %v", c.in, err)
		}
	}
}

func TestQuickObjectTopMembers(t *testing.T) {
	var got []string
	ok := QuickObject([]byte(`{"a": [1, 2] ,"b":"x","c":{"d":true}}`), func(k, v []byte) bool {
		got = append(got, string(k)+"="+string(v))
		return string(k) != "c"
	})
	if ok || strings.Join(got, " ") != `a=[1, 2] b="x" c={"d":true}` {
		t.Fatalf("ok %v, members %q", ok, got)
	}
}

// FuzzQuickObject: whatever QuickObject vouches for, the strict check
// accepts.
func FuzzQuickObject(f *testing.F) {
	for _, c := range quickCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if QuickObject(data, nil) {
			if err := checkJSONObjectStrictly(data); err != nil {
				t.Fatalf("QuickObject vouched for %q, which the strict check refuses: %v", data, err)
			}
		}
	})
}

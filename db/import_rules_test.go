package db

import (
	"strings"
	"testing"
)

// Import holds every record to the live API's rules (ids, control
// characters, lengths) and reports each offender by its JSON path; as
// ReadLegacy refuses the files whole, nothing of them is imported.
func TestImportFollowsTheAPIRules(t *testing.T) {
	good := `"token":"t","createdAtMs":1,"approvedAtMs":2`
	long := strings.Repeat("x", MaxStringBytes+1)
	paired := `{
		" n1 ":{"nodeId":" n1 ",` + good + `},
		"n\u001b2":{"nodeId":"n\u001b2",` + good + `},
		"n3":{"nodeId":"n3","displayName":"Den\u001b[2K",` + good + `},
		"n4":{"nodeId":"n4","platform":"` + long + `",` + good + `},
		"n5":{"nodeId":"n5","caps":["a",""],` + good + `},
		"n6":{"nodeId":"n6","bins":["ls\u0000"],` + good + `},
		"n7":{"nodeId":"n7","permissions":{"cam\u202eera":true},` + good + `},
		"ok":{"nodeId":"ok",` + good + `}
	}`
	pending := `{
		"r1 ":{"requestId":"r1 ","nodeId":"m","ts":1},
		"r2":{"requestId":"r2","nodeId":"m\u2066","ts":1},
		"r3":{"requestId":"r3","nodeId":"m","remoteIp":"1.2.3.4\u0085","ts":1}
	}`
	_, err := ReadLegacy([]byte(paired), []byte(pending))
	if err == nil || ErrorCode(err) != CodeInvalid {
		t.Fatalf("want a CodeInvalid report, got %v", err)
	}
	for _, want := range []string{
		`paired.json: $[" n1 "].nodeId: white space around the id; the API trims ids, so this record could never be found`,
		`paired.json: $["n\u001b2"].nodeId: control or bidirectional-override character U+001B at byte 1`,
		`paired.json: $["n3"].displayName: control or bidirectional-override character U+001B at byte 3`,
		`paired.json: $["n4"].platform: at most 256 bytes (got 257)`,
		`paired.json: $["n5"].caps[1]: must not be empty`,
		`paired.json: $["n6"].bins[0]: control or bidirectional-override character U+0000 at byte 2`,
		`paired.json: $["n7"].permissions key: control or bidirectional-override character U+202E at byte 3`,
		`pending.json: $["r1 "].requestId: white space around the id`,
		`pending.json: $["r2"].nodeId: control or bidirectional-override character U+2066 at byte 1`,
		`pending.json: $["r3"].remoteIp: control or bidirectional-override character U+0085 at byte 7`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("report lacks %s\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `$["ok"]`) {
		t.Errorf("a valid record is reported: %v", err)
	}

}

package ws

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/fixture"
	"github.com/pairgate/pairgate/server/rpc"
)

// FuzzDecodeFrame: any client frame is accepted as a request with a
// method, or refused with a reason. Never a panic.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte(`{"type":"req","id":"1","method":"node.pair.list","params":{}}`))
	f.Add([]byte(`{"type":"req","id":"1","method":"x","extra":1}`))
	f.Add([]byte(`{"type":"event","id":5}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"type":"req","id":"1","method":"a","method":"b"}`))
	f.Add([]byte(`{"type":"req","id":"","method":"m"}`))
	f.Add([]byte(` { "type" : "req" , "id":"2","method":"x", "params" : [ 1 , {"a":null} ] } `))
	f.Add([]byte(`{"type":"req","id":"a\"b","method":"m","params":{"k":"\u0041"}}`))
	f.Add([]byte(`{"type":"req","id":"1","method":"m","params":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err == nil && (fr.Type != "req" || fr.ID == "" || fr.Method == "") {
			t.Fatalf("accepted a frame that is not a request: %+v", fr)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("refusal without a reason")
		}
		// The fast way vouches only for what the strict way reads alike.
		if quick, ok := quickFrame(data); ok {
			strict, err := strictFrame(data)
			if err != nil || strict.Type != quick.Type || strict.ID != quick.ID || strict.Method != quick.Method || !bytes.Equal(strict.Params, quick.Params) {
				t.Fatalf("quickFrame read %q as %+v; strictly: %+v, %v", data, quick, strict, err)
			}
		}
	})
}

// FuzzConnectParams: any connect params are either a usable connect or
// refused with a message and a close code. Never a panic.
func FuzzConnectParams(f *testing.F) {
	f.Add([]byte(`{"minProtocol":3,"maxProtocol":3,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli"}}`))
	f.Add([]byte(`{"minProtocol":3,"maxProtocol":3,"client":{"id":"c","version":"1","platform":"p","mode":"node"},"role":"node","device":{"id":"x","publicKey":"AA","signature":"AA","signedAt":1}}`))
	f.Add([]byte(`{"minProtocol":4,"maxProtocol":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cp, herr := parseConnect(json.RawMessage(raw))
		if herr != nil {
			if db.ErrorMessage(herr.err) == "" || herr.closeCode == 0 {
				t.Fatalf("refusal without message or close code: %+v", herr)
			}
			return
		}
		if cp.Role != rpc.RoleOperator && cp.Role != rpc.RoleNode || cp.MinProtocol > 3 || cp.MaxProtocol < 3 {
			t.Fatalf("accepted %+v", cp)
		}
		if cp.Device != nil {
			if herr := verifyDevice(cp, "nonce", time.Now(), time.Minute); herr != nil && !strings.HasPrefix(db.ErrorMessage(herr.err), "device ") {
				t.Fatalf("device refusal %q", db.ErrorMessage(herr.err))
			}
		}
	})
}

func TestV3PayloadIsOpenClaws(t *testing.T) {
	var cp connectParams
	cp.Device = &deviceParams{ID: "dev", SignedAt: 1700000000000, Nonce: "n-1"}
	cp.Client.ID, cp.Client.Mode, cp.Role = "node-host", "node", "node"
	cp.Scopes = []string{"a", "b"}
	cp.Auth.DeviceToken = "tok"
	cp.Client.Platform, cp.Client.DeviceFamily = "  MacOS ", "ÉCRAN Mac"
	got := signaturePayloads(cp)
	want := "v3|dev|node-host|node|node|a,b|1700000000000|tok|n-1|macos|Écran mac"
	if got[0] != want || got[1] != "v2|dev|node-host|node|node|a,b|1700000000000|tok|n-1" {
		t.Fatalf("payloads %q, want %q first", got, want)
	}
	// A bootstrap token is signed when it is the only one sent; with
	// auth.token, only auth.token is.
	cp.Auth.BootstrapToken = "boot"
	if got := signaturePayloads(cp); len(got) != 4 || !strings.Contains(got[2], "|boot|") {
		t.Fatalf("payloads with two candidate tokens %q", got)
	}
	cp.Auth.Token = "shared"
	if got := signaturePayloads(cp); len(got) != 2 || !strings.Contains(got[0], "|shared|") {
		t.Fatalf("payloads with auth.token %q", got)
	}
	cp.Auth = struct {
		Token          string `json:"token"`
		DeviceToken    string `json:"deviceToken"`
		BootstrapToken string `json:"bootstrapToken"`
	}{DeviceToken: "tok"}
	cp.Device.Nonce = ""
	if got := signaturePayloads(cp); len(got) != 1 || got[0] != "v1|dev|node-host|node|node|a,b|1700000000000|tok" {
		t.Fatalf("v1 payload %q", got)
	}
}

func TestRecordedSignedConnectsVerify(t *testing.T) {
	recs := fixture.Records(t, "frames-*.jsonl")
	recs = append(recs, fixture.Records(t, filepath.Join("mock-gateway-probe", "frames-*.jsonl"))...)
	nonces := map[string]string{}
	verified := 0
	for _, r := range recs {
		var f struct {
			Method, Event string
			Params        json.RawMessage
		}
		if len(r.Frame) == 0 {
			continue // a close, recorded without a frame
		}
		if err := json.Unmarshal(r.Frame, &f); err != nil {
			t.Fatalf("%s: %v", r.Key(), err)
		}
		if r.Dir == "s2c" && f.Event == "connect.challenge" {
			var ev struct{ Payload struct{ Nonce string } }
			if err := json.Unmarshal(r.Frame, &ev); err != nil {
				t.Fatalf("%s: %v", r.Key(), err)
			}
			nonces[r.Key()] = ev.Payload.Nonce
			continue
		}
		if r.Dir != "c2s" || f.Method != "connect" {
			continue
		}
		cp, herr := parseConnect(f.Params)
		if herr != nil || cp.Device == nil {
			continue
		}
		signedAt := time.UnixMilli(cp.Device.SignedAt)
		if herr := verifyDevice(cp, nonces[r.Key()], signedAt, DeviceSignatureWindow); herr != nil {
			t.Errorf("%s: recorded connect does not verify: %s", r.Key(), db.ErrorMessage(herr.err))
			continue
		}
		verified++
		// Any change to what was signed breaks it.
		cp.Scopes = append(slices.Clone(cp.Scopes), "operator.extra")
		if herr := verifyDevice(cp, nonces[r.Key()], signedAt, DeviceSignatureWindow); herr == nil || db.ErrorMessage(herr.err) != "device signature invalid" {
			t.Errorf("%s: a tampered connect verified", r.Key())
		}
	}
	if verified < 26 {
		t.Fatalf("verified %d recorded signed connects, want at least 26", verified)
	}
}

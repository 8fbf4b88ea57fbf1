package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err == nil && (fr.Type != "req" || fr.ID == "" || fr.Method == "") {
			t.Fatalf("accepted a frame that is not a request: %+v", fr)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("refusal without a reason")
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
			if herr.err.Message == "" || herr.closeCode == 0 {
				t.Fatalf("refusal without message or close code: %+v", herr)
			}
			return
		}
		if cp.Role != roleOperator && cp.Role != roleNode || cp.MinProtocol > 3 || cp.MaxProtocol < 3 {
			t.Fatalf("accepted %+v", cp)
		}
		if cp.Device != nil {
			if herr := verifyDevice(cp, "nonce", time.Now(), time.Minute); herr != nil && !strings.HasPrefix(herr.err.Message, "device ") {
				t.Fatalf("device refusal %q", herr.err.Message)
			}
		}
	})
}

// FuzzRESTBody: the strict body reader of the REST handlers accepts one
// JSON object and nothing else, or refuses with a 400 or 413 and a
// message. Never a panic.
func FuzzRESTBody(f *testing.F) {
	f.Add([]byte(`{"nodeId":"n1","token":"t"}`))
	f.Add([]byte(`{"nodeId":"a","nodeId":"b"}`))
	f.Add([]byte(`{"a":{"b":1,"b":2}}`))
	f.Add([]byte(`{"nodeId":"n1"} {"more":1}`))
	f.Add([]byte(`{"nodeId":"n1"}garbage`))
	f.Add([]byte(strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000)))
	f.Add([]byte(`{"a":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + "}"))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte("{\"a\":\"\xff\"}"))
	f.Add([]byte(``))
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest("POST", "/", bytes.NewReader(body)), rec)
		got, err := readObject(c)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || (ae.Status != 400 && ae.Status != 413) || ae.Message == "" {
				t.Fatalf("refusal %#v", err)
			}
			return
		}
		var obj map[string]json.RawMessage
		if !bytes.Equal(got, body) || json.Unmarshal(got, &obj) != nil || obj == nil {
			t.Fatalf("accepted %q", body)
		}
	})
}

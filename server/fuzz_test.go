package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/pairgate/pairgate/db"
)

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
			var de *db.Error
			if status := statusOf(err); !errors.As(err, &de) || (status != 400 && status != 413) || de.Message == "" {
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

// Package webhook delivers a profile's events to its configured endpoints:
// from the outbox, in order and at least once per endpoint, signed as the
// Standard Webhooks specification says, with a cursor per endpoint in the
// profile's database. Each endpoint has a goroutine of its own, so a slow
// or dead receiver holds up nothing but itself.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/pairgate/pairgate/db"
)

// Message is the body of every delivery.
type Message struct {
	Type    string          `json:"type"`
	Profile string          `json:"profile"`
	Seq     int64           `json:"seq"`
	TS      int64           `json:"ts"`
	Data    json.RawMessage `json:"data"`
}

// Body is the JSON body delivering event e of profile.
func Body(profile string, e db.Event) []byte {
	b, err := json.Marshal(Message{Type: e.Name, Profile: profile, Seq: e.Seq, TS: e.TS, Data: e.Payload})
	if err != nil {
		panic(err) // a payload read back from the outbox is valid JSON
	}
	return b
}

// MessageID is the webhook-id of event e: its seq, the same on every retry.
func MessageID(e db.Event) string { return strconv.FormatInt(e.Seq, 10) }

// Sign is the webhook-signature value: "v1," and the base64 HMAC-SHA256,
// under key, of "id.timestamp.body".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

package db

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
)

// NodeMeta is what a node says about itself when it asks to pair. Every
// field is optional; empty strings and nil collections mean "absent" (an
// empty but non-nil list is kept as an empty list).
type NodeMeta struct {
	DisplayName     string      `json:"displayName,omitempty"`
	Platform        string      `json:"platform,omitempty"`
	Version         string      `json:"version,omitempty"`
	CoreVersion     string      `json:"coreVersion,omitempty"`
	UIVersion       string      `json:"uiVersion,omitempty"`
	DeviceFamily    string      `json:"deviceFamily,omitempty"`
	ModelIdentifier string      `json:"modelIdentifier,omitempty"`
	Caps            []string    `json:"caps,omitzero"`
	Commands        []string    `json:"commands,omitzero"`
	Permissions     Permissions `json:"permissions,omitzero"`
	RemoteIP        string      `json:"remoteIp,omitempty"`
}

// NodeEntry is one node as node.list and node.describe show it (and the
// REST API and the CLI read it): the paired record, with what its live session says on
// top while it is connected. Field order follows OpenClaw's.
type NodeEntry struct {
	NodeID string `json:"nodeId"`
	NodeMeta
	ConnectedAtMs int64 `json:"connectedAtMs,omitempty"`
	Paired        bool  `json:"paired"`
	Connected     bool  `json:"connected"`
}

// ServedProfile is one served profile as GET /api/v1/profiles lists it:
// its counts and its connected nodes.
type ServedProfile struct {
	Name     string `json:"name"`
	StateDir string `json:"stateDir"`
	Counts
	Connected int `json:"connected"`
}

// NodeDescription is node.describe's answer.
type NodeDescription struct {
	TS int64 `json:"ts"`
	NodeEntry
}

// NodeList is node.list's answer.
type NodeList struct {
	TS    int64       `json:"ts"`
	Nodes []NodeEntry `json:"nodes"`
}

// WriteJSON writes l as json.Marshal does, and a newline (as an encoder
// does), one entry at a time: at 100,000 nodes the answer is 37 MB, which
// an encoder builds whole (growing, so copying, its buffer) before the
// first byte goes out, once for each caller at a time.
func (l NodeList) WriteJSON(w io.Writer) error {
	b := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(b, `{"ts":%d,"nodes":`, l.TS)
	if l.Nodes == nil {
		b.WriteString("null")
	} else {
		b.WriteByte('[')
		for i, n := range l.Nodes {
			e, err := json.Marshal(n)
			if err != nil {
				return err
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e)
		}
		b.WriteByte(']')
	}
	b.WriteString("}\n")
	return b.Flush()
}

// PendingRequest is a node's request to join, in OpenClaw's shape and field order.
type PendingRequest struct {
	RequestID string `json:"requestId"`
	NodeID    string `json:"nodeId"`
	NodeMeta
	Silent   *bool `json:"silent,omitempty"`
	IsRepair bool  `json:"isRepair"`
	TS       int64 `json:"ts"`
	// Extra holds fields of an imported legacy record that pairgate does
	// not know; only the legacy files show them again.
	Extra Fields `json:"-"`
	// PublicKey is the device key a node's connect was signed with, for
	// requests opened at connect; the legacy shapes do not show it.
	PublicKey string `json:"-"`
}

// Node is a paired node. Token is set only where the caller may see it: in
// an approval result, in verify's answer (the caller sent it) and in exports.
type Node struct {
	NodeID string `json:"nodeId"`
	Token  string `json:"token,omitempty"`
	NodeMeta
	CreatedAtMs       int64    `json:"createdAtMs"`
	ApprovedAtMs      int64    `json:"approvedAtMs"`
	Bins              []string `json:"bins,omitzero"`
	LastConnectedAtMs int64    `json:"lastConnectedAtMs,omitempty"`
	Extra             Fields   `json:"-"`
	// PublicKey is the pinned device key of a node paired at connect.
	PublicKey string `json:"-"`
}

// Field is one JSON member kept verbatim: its name and raw value.
type Field struct {
	Name  string
	Value json.RawMessage
}

// Fields are members in their original order.
type Fields []Field

// column stores fields as a JSON array of [name, value] pairs, NULL when empty.
func (f Fields) column() sql.NullString {
	if len(f) == 0 {
		return sql.NullString{}
	}
	pairs := make([][2]json.RawMessage, len(f))
	for i, x := range f {
		name, _ := json.Marshal(x.Name)
		pairs[i] = [2]json.RawMessage{name, x.Value}
	}
	b, err := json.Marshal(pairs)
	if err != nil {
		panic(err) // raw values were validated JSON when read
	}
	return sql.NullString{String: string(b), Valid: true}
}

func fieldsFromColumn(col sql.NullString) (Fields, error) {
	if !col.Valid {
		return nil, nil
	}
	var pairs [][2]json.RawMessage
	if err := json.Unmarshal([]byte(col.String), &pairs); err != nil {
		return nil, err
	}
	out := make(Fields, len(pairs))
	for i, p := range pairs {
		if err := json.Unmarshal(p[0], &out[i].Name); err != nil {
			return nil, err
		}
		out[i].Value = p[1]
	}
	return out, nil
}

// Request status values.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
	StatusExpired  = "expired"
)

// RequestStatus is a kept request with what became of it.
type RequestStatus struct {
	Request PendingRequest `json:"request"`
	Status  string         `json:"status"`
	// DecidedAtMs is when it was approved or rejected, or when it expired.
	DecidedAtMs int64 `json:"decidedAtMs,omitempty"`
}

// Origin says who made a change and from where; it goes into the audit log.
type Origin struct {
	// Actor is the operator token's name, or cli, rest, ws, sweeper, import, policy.
	Actor string
	// Source is the peer address, when there is one.
	Source string
}

// metaColumns are the NodeMeta columns, shared by requests and nodes.
const metaColumns = `display_name, platform, version, core_version, ui_version,
	device_family, model_identifier, caps, commands, permissions, remote_ip`

// metaArgs returns the values for metaColumns, in order.
func metaArgs(m NodeMeta) []any {
	return []any{
		nullString(m.DisplayName), nullString(m.Platform), nullString(m.Version),
		nullString(m.CoreVersion), nullString(m.UIVersion), nullString(m.DeviceFamily),
		nullString(m.ModelIdentifier), jsonColumn(m.Caps), jsonColumn(m.Commands),
		jsonColumn(m.Permissions), nullString(m.RemoteIP),
	}
}

// metaScan receives metaColumns from a row and then fills a NodeMeta.
type metaScan struct {
	displayName, platform, version, coreVersion, uiVersion sql.NullString
	deviceFamily, modelIdentifier, caps, commands          sql.NullString
	permissions, remoteIP                                  sql.NullString
}

func (s *metaScan) dest() []any {
	return []any{
		&s.displayName, &s.platform, &s.version, &s.coreVersion, &s.uiVersion,
		&s.deviceFamily, &s.modelIdentifier, &s.caps, &s.commands, &s.permissions, &s.remoteIP,
	}
}

func (s *metaScan) meta() (NodeMeta, error) {
	m := NodeMeta{
		DisplayName: s.displayName.String, Platform: s.platform.String, Version: s.version.String,
		CoreVersion: s.coreVersion.String, UIVersion: s.uiVersion.String,
		DeviceFamily: s.deviceFamily.String, ModelIdentifier: s.modelIdentifier.String,
		RemoteIP: s.remoteIP.String,
	}
	if err := fromJSONColumn(s.caps, &m.Caps); err != nil {
		return m, fmt.Errorf("caps: %w", err)
	}
	if err := fromJSONColumn(s.commands, &m.Commands); err != nil {
		return m, fmt.Errorf("commands: %w", err)
	}
	if err := fromJSONColumn(s.permissions, &m.Permissions); err != nil {
		return m, fmt.Errorf("permissions: %w", err)
	}
	return m, nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullInt(i int64) sql.NullInt64 { return sql.NullInt64{Int64: i, Valid: i != 0} }

func nullBool(b *bool) sql.NullBool {
	if b == nil {
		return sql.NullBool{}
	}
	return sql.NullBool{Bool: *b, Valid: true}
}

// jsonColumn stores a list or map (a string list, Permissions) as JSON
// text, and NULL when it is nil, whatever its type. (A list of the types
// once missed Permissions, and every request without permissions stored
// the text null.)
func jsonColumn(v any) sql.NullString {
	if rv := reflect.ValueOf(v); (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.IsNil() {
		return sql.NullString{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		// The column types always marshal.
		panic(err)
	}
	return sql.NullString{String: string(b), Valid: true}
}

// fromJSONColumn decodes a JSON column into a zero value. NULL, and the
// text null that earlier versions stored for absent permissions, leave
// it as it is, as decoding null would.
func fromJSONColumn[T any](col sql.NullString, into *T) error {
	if !col.Valid || col.String == "null" {
		return nil
	}
	return json.Unmarshal([]byte(col.String), into)
}

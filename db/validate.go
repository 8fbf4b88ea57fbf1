package db

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Input bounds (pairgate): past one of these the caller gets an error that
// names the field and the bound, and nothing is stored.
const (
	MaxStringBytes = 256
	MaxListItems   = 256
	MaxItemBytes   = 128
)

// RequestInput is what node.pair.request takes.
type RequestInput struct {
	NodeID string
	NodeMeta
	Silent *bool
	// Admit, when set, is asked before a new request is written (not when
	// the node's pending request is returned); its error refuses it.
	Admit func() error
	// AutoApprove says the profile's policy approves a new request at
	// once (autoApprove.silentCidrs): it is created and approved in one
	// transaction, with both events. A request the node already had
	// pending is returned as it is.
	AutoApprove bool
	// Awaiting, when set, is called inside the transaction with the id of
	// the node's pending request (new, adopted or kept), before anything
	// about it commits: a face registers there who waits for its
	// resolution, so that not even an auto-approval passes unseen. It
	// may be called again if the transaction is retried.
	Awaiting func(requestID string)
}

// normalize trims the node id and checks every bound.
func (in *RequestInput) normalize() error {
	in.NodeID = strings.TrimSpace(in.NodeID)
	if in.NodeID == "" {
		return invalidf("nodeId required")
	}
	if err := checkString("nodeId", in.NodeID); err != nil {
		return err
	}
	if err := in.NodeMeta.check(); err != nil {
		return err
	}
	// The address decides auto-approval (autoApprove.silentCidrs) and is
	// shown to operators as where the node is: a name or a port there
	// would be believed as neither.
	if in.RemoteIP != "" {
		if _, err := netip.ParseAddr(in.RemoteIP); err != nil {
			return invalidf("remoteIp: %q is not an IP address (such as 192.0.2.7 or 2001:db8::7, without a port)", in.RemoteIP)
		}
	}
	return nil
}

// check holds every field a node supplies about itself to the input
// bounds; the error names the field.
func (m *NodeMeta) check() error {
	for _, f := range []struct {
		name  string
		value string
	}{
		{"displayName", m.DisplayName}, {"platform", m.Platform}, {"version", m.Version},
		{"coreVersion", m.CoreVersion}, {"uiVersion", m.UIVersion}, {"deviceFamily", m.DeviceFamily},
		{"modelIdentifier", m.ModelIdentifier}, {"remoteIp", m.RemoteIP},
	} {
		if err := checkString(f.name, f.value); err != nil {
			return err
		}
	}
	if err := checkList("caps", m.Caps); err != nil {
		return err
	}
	if err := checkList("commands", m.Commands); err != nil {
		return err
	}
	return checkPermissions(m.Permissions)
}

// IsHidden reports the characters refused in every stored string, and
// shown as escapes where older data holds them: C0 controls (ESC, NUL,
// newline…), DEL, C1 controls, and the bidirectional embeddings, overrides
// and isolates (U+202A–U+202E, U+2066–U+2069). A terminal acts on the
// first three (cursor moves, OSC 52 clipboard writes, erasing a row); the
// last reorder what the reader sees. The marks U+200E, U+200F and U+061C
// stay allowed: they cannot reorder strong characters, and right-to-left
// names need them.
func IsHidden(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// checkText refuses invalid UTF-8 and hidden characters in field.
func checkText(field, v string) error {
	if !utf8.ValidString(v) {
		return invalidf("%s: not valid UTF-8", field)
	}
	for i, r := range v {
		if IsHidden(r) {
			return invalidf("%s: control or bidirectional-override character U+%04X at byte %d; such characters are not allowed", field, r, i)
		}
	}
	return nil
}

func checkString(field, v string) error {
	if len(v) > MaxStringBytes {
		return invalidf("%s: at most %d bytes (got %d)", field, MaxStringBytes, len(v))
	}
	return checkText(field, v)
}

func checkItem(field, v string) error {
	if v == "" {
		return invalidf("%s: must not be empty", field)
	}
	if len(v) > MaxItemBytes {
		return invalidf("%s: at most %d bytes (got %d)", field, MaxItemBytes, len(v))
	}
	return checkText(field, v)
}

func checkList(field string, items []string) error {
	if len(items) > MaxListItems {
		return invalidf("%s: at most %d items (got %d)", field, MaxListItems, len(items))
	}
	for i, v := range items {
		if err := checkItem(field+"["+strconv.Itoa(i)+"]", v); err != nil {
			return err
		}
	}
	return nil
}

func checkPermissions(perms Permissions) error {
	if len(perms) > MaxListItems {
		return invalidf("permissions: at most %d entries (got %d)", MaxListItems, len(perms))
	}
	for _, x := range perms {
		if err := checkItem("permissions key", x.Name); err != nil {
			return err
		}
	}
	return nil
}

// normalizeDisplayName trims an operator's display name and checks it.
func normalizeDisplayName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", invalidf("displayName required")
	}
	return name, checkString("displayName", name)
}

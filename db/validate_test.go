package db

import (
	"fmt"
	"testing"
)

// Control characters (C0 with ESC and NUL, DEL, C1) and bidirectional
// overrides and isolates are refused in the node id and in every string a
// node supplies, with the field named; nothing is written.
func TestHiddenCharactersAreRefusedByField(t *testing.T) {
	s := openStore(t, newClock())
	hidden := []rune{0x00, 0x07, 0x0a, 0x1b, 0x7f, 0x85, 0x9b, 0x202a, 0x202e, 0x2066, 0x2069}
	fields := map[string]func(in *RequestInput, v string){
		"nodeId":          func(in *RequestInput, v string) { in.NodeID = v },
		"displayName":     func(in *RequestInput, v string) { in.DisplayName = v },
		"platform":        func(in *RequestInput, v string) { in.Platform = v },
		"version":         func(in *RequestInput, v string) { in.Version = v },
		"coreVersion":     func(in *RequestInput, v string) { in.CoreVersion = v },
		"uiVersion":       func(in *RequestInput, v string) { in.UIVersion = v },
		"deviceFamily":    func(in *RequestInput, v string) { in.DeviceFamily = v },
		"modelIdentifier": func(in *RequestInput, v string) { in.ModelIdentifier = v },
		"remoteIp":        func(in *RequestInput, v string) { in.RemoteIP = v },
		"caps[1]":         func(in *RequestInput, v string) { in.Caps = []string{"ok", v} },
		"commands[0]":     func(in *RequestInput, v string) { in.Commands = []string{v} },
		"permissions key": func(in *RequestInput, v string) { in.Permissions = Permissions{{Name: v, Granted: true}} },
	}
	for field, set := range fields {
		for _, r := range hidden {
			in := RequestInput{NodeID: "n"}
			set(&in, "ab"+string(r)+"c")
			_, err := s.Request(ctx, in, byCLI)
			wantCode(t, err, CodeInvalid, fmt.Sprintf("%s: control or bidirectional-override character U+%04X at byte 2; such characters are not allowed", field, r))
		}
	}
	_, err := s.Rename(ctx, "n", "evil\x1b]52;c;aGk=\x07", byCLI)
	wantCode(t, err, CodeInvalid, "displayName: control or bidirectional-override character U+001B at byte 4; such characters are not allowed")
	if evs := allEvents(t, s); len(evs) != 0 {
		t.Fatalf("refused input wrote %d events", len(evs))
	}
	// Right-to-left names keep their marks (U+200F, U+061C).
	mustRequest(t, s, RequestInput{NodeID: "n", NodeMeta: NodeMeta{DisplayName: "\u05d0\u200f-\u061c\u0627"}})
}

// remoteIp decides auto-approval and tells operators where a node is: a
// name or an address with a port is refused with the field named, and
// nothing is written; IPv4, IPv6 and mapped addresses are kept as given.
func TestRemoteIPMustBeAnAddress(t *testing.T) {
	s := openStore(t, newClock())
	for _, bad := range []string{"example.com", "192.0.2.7:8080", "[2001:db8::7]", "1.2.3", "192.0.2.7/24", " 192.0.2.7"} {
		_, err := s.Request(ctx, RequestInput{NodeID: "n", NodeMeta: NodeMeta{RemoteIP: bad}}, byCLI)
		wantCode(t, err, CodeInvalid, fmt.Sprintf("remoteIp: %q is not an IP address (such as 192.0.2.7 or 2001:db8::7, without a port)", bad))
	}
	if evs := allEvents(t, s); len(evs) != 0 {
		t.Fatalf("refused input wrote %d events", len(evs))
	}
	for i, good := range []string{"192.0.2.7", "2001:db8::7", "::ffff:192.0.2.7"} {
		res := mustRequest(t, s, RequestInput{NodeID: fmt.Sprint("n", i), NodeMeta: NodeMeta{RemoteIP: good}})
		if res.Request.RemoteIP != good {
			t.Fatalf("remoteIp %q stored as %q", good, res.Request.RemoteIP)
		}
	}
}

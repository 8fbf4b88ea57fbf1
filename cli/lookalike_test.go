package cli

import (
	"testing"

	"github.com/pairgate/pairgate/db"
)

func TestLookalikes(t *testing.T) {
	meta := func(name string) db.NodeMeta { return db.NodeMeta{DisplayName: name} }
	paired := []db.Node{{NodeID: "kitchen", NodeMeta: meta("Kitchen iPad")}, {NodeID: "fire", NodeMeta: meta("🔥")}}
	pending := []db.PendingRequest{
		{RequestID: "r-repair", NodeID: "kitchen", NodeMeta: meta("Kitchen iPad")}, // the node's own repair: not like itself
		{RequestID: "r-copy", NodeID: "copycat", NodeMeta: meta("Kitchen іPad")},
		{RequestID: "r-a", NodeID: "garage-a", NodeMeta: meta("Garage Pi")},
		{RequestID: "r-b", NodeID: "garage-b", NodeMeta: meta("garage pi")},
		{RequestID: "r-fire", NodeID: "fire-2", NodeMeta: meta("🔥")}, // no letters: no skeleton to compare
		{RequestID: "r-plain", NodeID: "attic", NodeMeta: meta("Attic Pi")},
	}
	got := lookalikes(pending, paired)
	want := map[string]lookalike{
		"r-copy": {"Kitchen iPad", "kitchen", true},
		// The repair is told of the copy asking beside it.
		"r-repair": {"Kitchen іPad", "copycat", false},
		"r-a":      {"garage pi", "garage-b", false},
		"r-b":      {"Garage Pi", "garage-a", false},
	}
	if len(got) != len(want) {
		t.Fatalf("look-alikes %v, want %v", got, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %+v, want %+v", id, got[id], w)
		}
	}
}

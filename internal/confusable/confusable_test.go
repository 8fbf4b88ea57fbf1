package confusable

import "testing"

func TestSkeleton(t *testing.T) {
	same := [][]string{
		{"Kitchen iPad", "kitchen-ipad", "KITCHEN IPAD", "Kitchen іPаd" /* Cyrillic і, а */, "Kitchen lPad", "Kítchen iPad", "Ｋｉｔｃｈｅｎ ｉＰａｄ", "Kitchen\u200b iPad"},
		{"Modem", "Mode\u043c", "Rnodem"},
		{"Pi 10", "Pi lO", "Pl 1o"},
		{"Woods", "VVoods", "Wοοds" /* Greek ο */},
	}
	for _, group := range same {
		for _, name := range group[1:] {
			if Skeleton(name) != Skeleton(group[0]) {
				t.Errorf("%q and %q look alike; skeletons %q and %q", group[0], name, Skeleton(group[0]), Skeleton(name))
			}
		}
	}
	for _, pair := range [][2]string{{"Kitchen iPad", "Kitchen iPod"}, {"Pixel 8", "Pixel 9"}, {"Den", "Dan"}} {
		if Skeleton(pair[0]) == Skeleton(pair[1]) {
			t.Errorf("%q and %q are told apart by a reader, not by skeleton (%q)", pair[0], pair[1], Skeleton(pair[0]))
		}
	}
	if Skeleton("🔥 — 🔥") != "" {
		t.Errorf("a name of no letter has the skeleton %q", Skeleton("🔥 — 🔥"))
	}
}

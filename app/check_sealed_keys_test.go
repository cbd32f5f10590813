package app

import "testing"

func TestSealedKeyReport(t *testing.T) {
	for name, tc := range map[string]struct {
		census        SealedCensus
		none, partial bool
		ids           string
	}{
		"nothing stored": {census: SealedCensus{ByKeyID: map[string]int{}}},
		"all under the running key": {
			census: SealedCensus{Values: 2, ByKeyID: map[string]int{"run": 2}},
			ids:    "run (2 values)",
		},
		"all under another key": {
			census: SealedCensus{Values: 3, ByKeyID: map[string]int{"old": 2, "other": 1}},
			none:   true, ids: "old (2 values), other (1 value)",
		},
		"mid-rotation, every value under both": {
			census: SealedCensus{Values: 2, ByKeyID: map[string]int{"old": 2, "run": 2}},
			ids:    "old (2 values), run (2 values)",
		},
		"some under the running key": {
			census:  SealedCensus{Values: 3, ByKeyID: map[string]int{"old": 1, "run": 2}},
			partial: true, ids: "old (1 value), run (2 values)",
		},
	} {
		r := SealedKeyReport{KeyID: "run", Census: tc.census}
		if r.NoneOpenable() != tc.none || r.Partial() != tc.partial || r.KeyIDs() != tc.ids {
			t.Errorf("%s: none=%v partial=%v ids=%q", name, r.NoneOpenable(), r.Partial(), r.KeyIDs())
		}
	}
}

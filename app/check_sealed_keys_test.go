package app

import "testing"

func TestSealedKeyReport(t *testing.T) {
	count := func(kind string, values int, by map[string]int) SealedCount {
		return SealedCount{Kind: kind, Values: values, ByKeyID: by}
	}
	for name, tc := range map[string]struct {
		counts        []SealedCount
		none, partial bool
		ids           string
	}{
		"nothing stored": {counts: []SealedCount{count("totp_seed", 0, map[string]int{})}},
		"all under the running key": {
			counts: []SealedCount{count("totp_seed", 2, map[string]int{"run": 2})},
			ids:    "run (2 totp_seed)",
		},
		"all under another key": {
			counts: []SealedCount{count("totp_seed", 3, map[string]int{"old": 2, "other": 1})},
			none:   true, ids: "old (2 totp_seed), other (1 totp_seed)",
		},
		"mid-rotation, every value under both": {
			counts: []SealedCount{count("totp_seed", 2, map[string]int{"old": 2, "run": 2})},
			ids:    "old (2 totp_seed), run (2 totp_seed)",
		},
		"some under the running key": {
			counts:  []SealedCount{count("totp_seed", 3, map[string]int{"old": 1, "run": 2})},
			partial: true, ids: "old (1 totp_seed), run (2 totp_seed)",
		},
		"one kind opens, the other does not": {
			counts: []SealedCount{
				count("totp_seed", 1, map[string]int{"run": 1}),
				count("exchange_secret", 2, map[string]int{"old": 2}),
			},
			partial: true, ids: "old (2 exchange_secret), run (1 totp_seed)",
		},
	} {
		r := SealedKeyReport{KeyID: "run", Counts: tc.counts}
		if r.NoneOpenable() != tc.none || r.Partial() != tc.partial || r.KeyIDs() != tc.ids {
			t.Errorf("%s: none=%v partial=%v ids=%q", name, r.NoneOpenable(), r.Partial(), r.KeyIDs())
		}
	}
}

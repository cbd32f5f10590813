package domain_test

import (
	"errors"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

// TestKillSwitchSet: a change is one event at the next version with the
// trimmed reason; setting the switch where it is records nothing and
// keeps the first reason; a bad reason changes nothing.
func TestKillSwitchSet(t *testing.T) {
	k := domain.RestoreKillSwitch(false, "", 0)
	k, ev, err := k.Set(true, "  incident INC-1 \n")
	if err != nil || ev == nil || ev.Type != domain.EventKillSwitchEngaged || !k.Engaged() || k.Reason() != "incident INC-1" || k.Version() != 1 {
		t.Fatalf("engage: %+v %+v %v", k, ev, err)
	}
	if ev.Data.(domain.KillSwitchChanged).Reason != "incident INC-1" {
		t.Fatalf("payload %+v", ev.Data)
	}
	same, ev, err := k.Set(true, "again")
	if err != nil || ev != nil || same != k {
		t.Fatalf("engage twice: %+v %+v %v", same, ev, err)
	}
	for _, bad := range []string{"", " \t ", "a\x00b", "bell\a", string(make([]byte, 1001))} {
		var derr *domain.Error
		if _, ev, err := k.Set(false, bad); !errors.As(err, &derr) || derr.Code != "invalid_reason" || ev != nil {
			t.Fatalf("reason %q: %v %v", bad, ev, err)
		}
	}
	k, ev, err = k.Set(false, "resolved")
	if err != nil || ev == nil || ev.Type != domain.EventKillSwitchReleased || k.Engaged() || k.Version() != 2 {
		t.Fatalf("release: %+v %+v %v", k, ev, err)
	}
}

// TestHaltRejectsUnderEveryProfile: the engaged switch fails the kill
// switch check of either profile's rules, and a released one leaves the
// profile's own setting.
func TestHaltRejectsUnderEveryProfile(t *testing.T) {
	for _, p := range []domain.RiskProfile{domain.RiskProfileModel2, domain.RiskProfileLoose} {
		if !domain.RulesFor(p).Halt(true).Halted || domain.RulesFor(p).Halt(false).Halted != domain.RulesFor(p).Halted {
			t.Fatalf("%s", p)
		}
	}
}

package domain_test

import (
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

// reload folds k's recorded events with those before, as the repository
// would after appending them.
func reload(t *testing.T, history []domain.StoredEvent, k *domain.KeyRotation) ([]domain.StoredEvent, *domain.KeyRotation) {
	t.Helper()
	history = append(history, stored(t, k.Changes())...)
	k2, err := domain.LoadKeyRotation(history)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Version() != int64(len(history)) {
		t.Fatalf("version %d after %d events", k2.Version(), len(history))
	}
	return history, k2
}

func types(evs []domain.Event) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return strings.Join(out, ",")
}

func TestKeyRotationRollbackFreezesUntilUnfrozen(t *testing.T) {
	const old, nw = "00000000000000aa", "00000000000000bb"
	k, _ := domain.LoadKeyRotation(nil)
	if rb := k.ServerStarted(old, "h1"); rb != nil || len(k.Changes()) != 0 {
		t.Fatal("a start before any rotation records nothing")
	}
	// A dry run is not a rotation.
	k.RecordReencrypt(domain.KeysReencrypted{DryRun: true, OldKeyID: old, NewKeyID: nw})
	h, k := reload(t, nil, k)
	if k.LastApply() != nil || k.ServerStarted(nw, "h1") != nil || len(k.Changes()) != 0 {
		t.Fatal("a dry run counted as an applied rotation")
	}
	k.RecordReencrypt(domain.KeysReencrypted{OldKeyID: old, NewKeyID: nw, Completed: true})
	h, k = reload(t, h, k)
	// A replica restarted under the old key before any switched: no rollback.
	if k.ServerStarted(old, "h2") != nil || len(k.Changes()) != 0 {
		t.Fatalf("start under the old key before the switch recorded %s", types(k.Changes()))
	}
	// The first start under the new key activates it, once.
	k.ServerStarted(nw, "h1")
	if types(k.Changes()) != domain.EventKeyRotationActivated {
		t.Fatalf("recorded %s", types(k.Changes()))
	}
	h, k = reload(t, h, k)
	if k.ServerStarted(nw, "h3"); len(k.Changes()) != 0 {
		t.Fatal("second start under the new key recorded again")
	}
	if err := k.CheckChange(); err != nil {
		t.Fatal(err)
	}
	// Restoring the old key is the rollback: recorded once, freezing.
	rb := k.ServerStarted(old, "h1")
	if rb == nil || rb.FromKeyID != nw || rb.ToKeyID != old || rb.Host != "h1" || types(k.Changes()) != domain.EventKeyRotationRollback {
		t.Fatalf("rollback %+v, recorded %s", rb, types(k.Changes()))
	}
	h, k = reload(t, h, k)
	if k.ServerStarted(old, "h2") != nil || len(k.Changes()) != 0 {
		t.Fatal("a second replica under the old key recorded the rollback again")
	}
	err := k.CheckChange()
	if domain.ErrorKind(err) != domain.KindConflict || !strings.Contains(err.Error(), "rotation_frozen") || !strings.Contains(err.Error(), nw) {
		t.Fatalf("frozen: %v", err)
	}
	for _, c := range []struct{ incident, reason, code string }{
		{"", "why", "invalid_incident"},
		{"INC 1", "why", "invalid_incident"},
		{strings.Repeat("I", 65), "why", "invalid_incident"},
		{"INC-1", "  ", "invalid_reason"},
		{"INC-1", "bad\x00byte", "invalid_reason"},
		{"INC-1", "\xff\xfe", "invalid_reason"},
	} {
		if err := k.Unfreeze(c.incident, c.reason, "ops@host"); err == nil || !strings.Contains(err.Error(), c.code) {
			t.Errorf("unfreeze(%q, %q): %v, want %s", c.incident, c.reason, err, c.code)
		}
	}
	if err := k.Unfreeze("INC-123", "new key rejected by the canary", "ops@host"); err != nil {
		t.Fatal(err)
	}
	h, k = reload(t, h, k)
	if err := k.CheckChange(); err != nil || k.Frozen() != nil {
		t.Fatalf("still frozen: %v", err)
	}
	if err := k.Unfreeze("INC-124", "again", "ops@host"); err == nil || !strings.Contains(err.Error(), "not_frozen") {
		t.Fatalf("unfreeze when not frozen: %v", err)
	}
	// Switching to the new key again and back is another rollback.
	k.ServerStarted(nw, "h1")
	_, k = reload(t, h, k)
	if k.ServerStarted(old, "h1") == nil {
		t.Fatal("second rollback not detected")
	}
}

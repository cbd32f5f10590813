package domain_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
)

func mustEmail(t *testing.T, s string) domain.Email {
	t.Helper()
	e, err := domain.ParseEmail(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// stored turns recorded changes into what a stream read returns.
func stored(t *testing.T, evs []domain.Event) []domain.StoredEvent {
	t.Helper()
	out := make([]domain.StoredEvent, len(evs))
	for i, e := range evs {
		data, err := json.Marshal(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = domain.StoredEvent{Type: e.Type, SchemaVersion: e.SchemaVersion, Data: data}
	}
	return out
}

func TestUserRoundTripsThroughItsEvents(t *testing.T) {
	u, err := domain.NewUser("u1", mustEmail(t, " Alice@Example.COM "), domain.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	if err := u.ChangeRole(domain.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := u.ChangeRole(domain.RoleAdmin); err != nil { // no-op
		t.Fatal(err)
	}
	if err := u.AssignRiskProfile(domain.RiskProfileLoose); err != nil {
		t.Fatal(err)
	}
	if err := u.EnableTwoFactor(now); domain.ErrorKind(err) != domain.KindConflict {
		t.Fatalf("enable before setup: %v", err)
	}
	if err := u.StartTwoFactorSetup(); err != nil {
		t.Fatal(err)
	}
	if err := u.EnableTwoFactor(now); err != nil {
		t.Fatal(err)
	}
	if err := u.StartTwoFactorSetup(); domain.ErrorKind(err) != domain.KindConflict {
		t.Fatalf("setup while enabled: %v", err)
	}
	u.Logout(now.Add(time.Second))
	if len(u.Changes()) != 6 {
		t.Fatalf("changes: %d", len(u.Changes()))
	}

	got, err := domain.LoadUser(stored(t, u.Changes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != "u1" || got.Email().String() != "alice@example.com" || got.Role() != domain.RoleAdmin ||
		got.RiskProfile() != domain.RiskProfileLoose || !got.TOTPEnabled() || got.Version() != 6 ||
		!got.TokensValidAfter().Equal(now.Add(time.Second).Truncate(time.Microsecond)) || len(got.Changes()) != 0 {
		t.Fatalf("rehydrated user differs: %+v", got)
	}
	if err := got.DisableTwoFactor(now, false); err != nil || got.TOTPEnabled() {
		t.Fatal(err)
	}
	if err := got.DisableTwoFactor(now, true); domain.ErrorKind(err) != domain.KindConflict {
		t.Fatalf("disable twice: %v", err)
	}
}

func TestNewUserStartsStrict(t *testing.T) {
	u, _ := domain.NewUser("u1", mustEmail(t, "a@b.c"), domain.RoleOperator)
	if u.RiskProfile() != domain.RiskProfileModel2 || u.Version() != 0 {
		t.Fatal(u.RiskProfile())
	}
	if _, err := domain.NewUser("u1", mustEmail(t, "a@b.c"), "root"); domain.ErrorKind(err) != domain.KindInvalid {
		t.Fatal(err)
	}
}

func TestTokenRevokedWithMicroseconds(t *testing.T) {
	logout := time.Date(2026, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	for _, c := range []struct {
		iat     time.Duration
		revoked bool
	}{{100 * time.Millisecond, true}, {500 * time.Millisecond, true}, {500*time.Millisecond + time.Microsecond, false}, {900 * time.Millisecond, false}} {
		iat := logout.Truncate(time.Second).Add(c.iat)
		if got := domain.TokenRevoked(iat, logout); got != c.revoked {
			t.Errorf("iat %v: revoked %v, want %v", c.iat, got, c.revoked)
		}
	}
	if domain.TokenRevoked(logout, time.Time{}) {
		t.Error("a user who never logged out has no revoked tokens")
	}
}

func TestParseEmail(t *testing.T) {
	for _, bad := range []string{"", "a", "@b", "a@", "a@b@c", "a b@c", "a@b\x00", strings.Repeat("a", 250) + "@b.cd"} {
		if _, err := domain.ParseEmail(bad); domain.ErrorKind(err) != domain.KindInvalid {
			t.Errorf("%q accepted", bad)
		}
	}
	if e := mustEmail(t, "  Bob@Example.ORG\n"); e.String() != "bob@example.org" {
		t.Fatal(e)
	}
}

func TestSecretNeverFormats(t *testing.T) {
	s := domain.NewSecret("canary-s3cret")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s, "group", slog.GroupValue(slog.Any("s", s)))
	j, _ := json.Marshal(map[string]any{"s": s, "p": &s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s), buf.String(), string(j)} {
		if strings.Contains(out, "canary") {
			t.Fatalf("secret leaked: %s", out)
		}
	}
	if s.Reveal() != "canary-s3cret" {
		t.Fatal("Reveal")
	}
	if _, err := domain.NewPassword("short"); err == nil || strings.Contains(err.Error(), "short") {
		t.Fatalf("weak password: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/internal/testdb"
)

func runCLI(t *testing.T, dbURL, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"tradeops"}, args...), envOf(map[string]string{"DATABASE_URL": dbURL}),
		strings.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestUsersCLI(t *testing.T) {
	pool, url := testdb.New(t)
	out, err := runCLI(t, url, "correct horse battery\n", "users", "create", "--email", "Ops@Example.com", "--role", "operator", "--password-stdin")
	if err != nil || len(strings.TrimSpace(out)) != 36 {
		t.Fatalf("create: %q %v", out, err)
	}
	out, err = runCLI(t, url, "", "users", "create", "--email", "boss@example.com", "--role", "admin")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || len(lines[1]) < domain.MinPasswordLength {
		t.Fatalf("create with a generated password: %q %v", out, err)
	}
	if _, err := runCLI(t, url, "", "users", "create", "--email", "OPS@example.com", "--role", "admin"); domain.ErrorKind(err) != domain.KindConflict {
		t.Fatalf("duplicate email: %v", err)
	}
	if _, err := runCLI(t, url, "", "users", "set-role", "--email", "ops@example.com", "--role", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, url, "another long password\n", "users", "reset-password", "--email", "ops@example.com", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, url, "", "users", "disable-2fa", "--email", "ops@example.com"); domain.ErrorKind(err) != domain.KindConflict {
		t.Fatalf("disable-2fa without 2FA: %v", err)
	}
	out, err = runCLI(t, url, "", "users", "list")
	if err != nil || !strings.Contains(out, "ops@example.com") || !strings.Contains(out, "boss@example.com") ||
		strings.Count(out, "admin") != 2 || !strings.Contains(out, "model2") {
		t.Fatalf("list: %q %v", out, err)
	}
	var actors, types []string
	rows, _ := pool.Query(context.Background(), `SELECT event_type, metadata->>'actor_email' FROM watermill_events ORDER BY "offset"`)
	for rows.Next() {
		var typ, actor string
		_ = rows.Scan(&typ, &actor)
		types, actors = append(types, typ), append(actors, actor)
	}
	if strings.Join(types, ",") != "user.created,user.created,user.role.changed,user.password.changed" ||
		strings.Join(actors, ",") != "cli,cli,cli,cli" {
		t.Fatalf("events %v by %v", types, actors)
	}

	for _, args := range [][]string{
		{"users"},
		{"users", "frobnicate"},
		{"users", "create", "--email", "x@example.com"},
		{"users", "create", "--email", "x@example.com", "--role", "root"},
		{"users", "create", "--email", "not-an-email", "--role", "admin"},
		{"users", "set-role", "--email", "x@example.com"},
		{"users", "list", "extra"},
		{"users", "create", "--email", "x@example.com", "--role", "admin", "--password-stdin"}, // empty stdin: too short
	} {
		if _, err := runCLI(t, url, "", args...); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}

func TestDevSeedAndRiskProfileBinding(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(map[string]string{"RISK_PROFILE_LOOSE_EMAIL": "Risky@Example.com"}), true)
	ctx := context.Background()
	if err := h.id.start(ctx); err != nil {
		t.Fatal(err)
	}
	banner := h.out.String()
	for _, want := range []string{"DEV MODE", "admin@tradeops.local", "model2@tradeops.local", "risky@example.com"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("banner lacks %s:\n%s", want, banner)
		}
	}
	// The banner's passwords log in.
	for _, line := range strings.Split(banner, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.Contains(f[0], "@") {
			h.mustLogin(f[0], f[1], "")
		}
	}
	profiles := func() map[string]string {
		list, err := h.users.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, u := range list {
			m[u.Email] = string(u.RiskProfile) + "/" + string(u.Role)
		}
		return m
	}
	want := map[string]string{"admin@tradeops.local": "model2/admin", "model2@tradeops.local": "model2/operator", "risky@example.com": "loose/operator"}
	if got := profiles(); len(got) != 3 || got["admin@tradeops.local"] != want["admin@tradeops.local"] ||
		got["model2@tradeops.local"] != want["model2@tradeops.local"] || got["risky@example.com"] != want["risky@example.com"] {
		t.Fatalf("users: %v", got)
	}
	assigned := len(h.eventsOfType(domain.EventRiskProfileAssigned))
	if assigned != 1 {
		t.Fatalf("risk profile events: %d, want 1", assigned)
	}
	// A second start seeds nothing and records nothing: nothing changed.
	before := len(h.events())
	out := h.out.String()
	if err := h.id.start(ctx); err != nil {
		t.Fatal(err)
	}
	if len(h.events()) != before || h.out.String() != out {
		t.Fatal("a second start changed something")
	}
	// Bound elsewhere, the user falls back to the strict default.
	b, err := riskProfileBinding(envOf(map[string]string{"RISK_PROFILE_LOOSE_EMAIL": "model2@tradeops.local"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.NewBindRiskProfilesHandler(h.users).Handle(app.WithCaller(ctx, cliCaller()), b); err != nil {
		t.Fatal(err)
	}
	got := profiles()
	if got["risky@example.com"] != "model2/operator" || got["model2@tradeops.local"] != "loose/operator" {
		t.Fatalf("after rebinding: %v", got)
	}
	if _, err := riskProfileBinding(envOf(map[string]string{"RISK_PROFILE_LOOSE_EMAIL": "a@b.c", "RISK_PROFILE_MODEL2_EMAIL": "A@B.C"}), false); exitCode(err) != 2 {
		t.Fatalf("one user bound twice: %v", err)
	}
}

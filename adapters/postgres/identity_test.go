package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// Parallel attempts see each other: no more than the limit get through,
// and the rest are told to retry shortly (the others are in flight).
func TestBeginIsStrictUnderConcurrency(t *testing.T) {
	pool, _ := testdb.New(t)
	attempts := postgres.NewLoginAttempts(eventstore.New(pool))
	policy := domain.ThrottlePolicy{PerAccount: 5, PerIP: 100, Window: 15 * time.Minute}
	now := time.Now()
	const n = 30
	results := make([]app.Attempt, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = attempts.Begin(context.Background(), "a@example.com", "10.0.0.1", now, policy)
		})
	}
	wg.Wait()
	admitted := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch {
		case r.RetryAfter == 0 && r.ID > 0:
			admitted++
		case r.RetryAfter != time.Second:
			t.Fatalf("throttled by in-flight attempts: Retry-After %v, want 1s", r.RetryAfter)
		}
	}
	if admitted != policy.PerAccount {
		t.Fatalf("%d admitted, want %d", admitted, policy.PerAccount)
	}
}

func TestClaimTOTPStepOnce(t *testing.T) {
	pool, _ := testdb.New(t)
	users := postgres.NewUsers(eventstore.New(pool), 0)
	ctx := context.Background()
	email, _ := domain.ParseEmail("c@example.com")
	u, _ := domain.NewUser("6f1c1e38-3b0e-4b8a-9a43-2f1f4a6f0d11", email, domain.RoleOperator)
	if err := users.Create(ctx, u, app.Credentials{PasswordHash: domain.NewSecret("h"), TOTP: &app.TOTPSeed{Sealed: app.Sealed{"k": []byte("c")}}}); err != nil {
		t.Fatal(err)
	}
	wins := make(chan bool, 10)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			ok, err := users.ClaimTOTPStep(ctx, u.ID(), 1000)
			if err != nil {
				t.Error(err)
			}
			wins <- ok
		})
	}
	wg.Wait()
	close(wins)
	n := 0
	for ok := range wins {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d claims of one step won", n)
	}
	acct, err := users.FindByEmail(ctx, "C@EXAMPLE.COM")
	if err != nil || acct.TOTP == nil || acct.TOTP.LastStep != 1000 || string(acct.TOTP.Sealed["k"]) != "c" {
		t.Fatalf("%+v %v", acct, err)
	}
}

func TestUpdateRehydratesFromTheStream(t *testing.T) {
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	users := postgres.NewUsers(store, time.Minute)
	ctx := app.WithCaller(context.Background(), app.Caller{UserID: "actor", Email: "actor@example.com", RequestID: "req-1", ClientIP: "192.0.2.1"})
	email, _ := domain.ParseEmail("d@example.com")
	u, _ := domain.NewUser("0b9f5f37-6d5c-4a8e-8d7b-52c0c2a3b9e1", email, domain.RoleOperator)
	if err := users.Create(ctx, u, app.Credentials{PasswordHash: domain.NewSecret("h1")}); err != nil {
		t.Fatal(err)
	}
	st, err := users.AccessState(ctx, u.ID()) // now cached
	if err != nil || st.Role != domain.RoleOperator {
		t.Fatal(st, err)
	}
	err = users.Update(ctx, u.ID(), func(u *domain.User, c *app.Credentials) error {
		if c.PasswordHash.Reveal() != "h1" || u.Email().String() != "d@example.com" {
			t.Errorf("loaded %v", u.Email())
		}
		c.PasswordHash = domain.NewSecret("h2")
		u.ChangePassword(time.Now())
		return u.ChangeRole(domain.RoleAdmin)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The update evicted the cached state.
	if st, err := users.AccessState(ctx, u.ID()); err != nil || st.Role != domain.RoleAdmin || st.TokensValidAfter.IsZero() {
		t.Fatalf("after update: %+v %v", st, err)
	}
	acct, _ := users.FindByEmail(ctx, "d@example.com")
	if acct.PasswordHash.Reveal() != "h2" || acct.Role != domain.RoleAdmin {
		t.Fatalf("%+v", acct)
	}
	evs, err := store.ReadStream(ctx, nil, domain.UserStream(u.ID()), 0)
	if err != nil || len(evs) != 3 || evs[2].Type != domain.EventUserRoleChanged || evs[2].SchemaVersion != 1 {
		t.Fatalf("%+v %v", evs, err)
	}
	md := evs[2].Metadata
	if md.ActorID != "actor" || md.ActorEmail != "actor@example.com" || md.CorrelationID != "req-1" || md.ClientIP != "192.0.2.1" {
		t.Fatalf("metadata %+v", md)
	}
	if err := users.Update(ctx, "5d7c8f0e-0000-4000-8000-000000000000", func(*domain.User, *app.Credentials) error { return nil }); domain.ErrorKind(err) != domain.KindNotFound {
		t.Fatalf("unknown user: %v", err)
	}
}

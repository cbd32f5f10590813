package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
)

// Parallel attempts see each other: no more than the limit get through,
// and the rest are told to retry shortly (the others are in flight).
func TestBeginIsStrictUnderConcurrency(t *testing.T) {
	pool, _ := testdb.New(t)
	attempts := postgres.NewLoginAttempts(eventstore.New(pool))
	policy := domain.DefaultThrottlePolicy
	policy.FreeFailures, policy.PerIP = 4, 6
	now := time.Now()
	const n = 30
	admitted := func(account, ip func(i int) string) int {
		t.Helper()
		results := make([]app.Attempt, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = attempts.Begin(context.Background(), account(i), ip(i), now, policy)
			})
		}
		wg.Wait()
		ok := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			switch {
			case r.RetryAfter == 0 && r.ID > 0:
				ok++
			case r.RetryAfter != time.Second:
				t.Fatalf("throttled by in-flight attempts: Retry-After %v, want 1s", r.RetryAfter)
			}
		}
		return ok
	}
	// One account from many IPs: the free failures, plus the attempt after
	// them (which costs no delay either).
	if got := admitted(func(int) string { return "account-a" }, func(i int) string { return fmt.Sprintf("10.0.0.%d", i) }); got != policy.FreeFailures+1 {
		t.Fatalf("one account: %d admitted, want %d", got, policy.FreeFailures+1)
	}
	// One IP at many accounts: the IP's limit.
	if got := admitted(func(i int) string { return fmt.Sprintf("account-%d", i) }, func(int) string { return "10.0.1.1" }); got != policy.PerIP {
		t.Fatalf("one IP: %d admitted, want %d", got, policy.PerIP)
	}
}

// Replicas starting together settle the stale attempts concurrently: each
// is removed and gets its event exactly once, in batches; fresh ones stay.
func TestSettleStaleSettlesEachAttemptOnce(t *testing.T) {
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	attempts := postgres.NewLoginAttempts(store)
	ctx := app.WithCaller(context.Background(), app.Caller{Email: "system", RequestID: "start-1"})
	now := time.Now()
	const stale = 1100
	if _, err := pool.Exec(ctx, `INSERT INTO login_attempts (account_key, client_ip, attempted_at, outcome)
		SELECT 'acct-' || (i % 50), '192.0.2.' || (i % 200), $1, 'pending' FROM generate_series(1, $2) i`, now.Add(-time.Minute), stale); err != nil {
		t.Fatal(err)
	}
	fresh, err := attempts.Begin(ctx, "acct-live", "192.0.2.250", now, domain.DefaultThrottlePolicy)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 3)
	var wg sync.WaitGroup
	for i := range counts {
		wg.Go(func() {
			var err error
			counts[i], err = attempts.SettleStale(ctx, now.Add(-30*time.Second), func(a app.Attempt) (string, domain.Event) {
				return "login-" + a.Account, domain.NewLoginFailedByHash(a.Account, domain.LoginFailureInterrupted)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if counts[0]+counts[1]+counts[2] != stale {
		t.Fatalf("settled %v, want %d in all", counts, stale)
	}
	waitCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := eventgen.WaitVisible(waitCtx, pool); err != nil {
		t.Fatal(err)
	}
	evs, err := store.Read(ctx, eventstore.Position{}, 2*stale, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range evs {
		seen[e.StreamID]++
		if e.Metadata.ClientIP == "" || e.Metadata.CorrelationID != "start-1" || !strings.Contains(string(e.Data), `"reason":"interrupted"`) {
			t.Fatalf("event %+v", e)
		}
	}
	if len(evs) != stale || len(seen) != 50 || seen["login-acct-1"] != stale/50 {
		t.Fatalf("%d events on %d streams", len(evs), len(seen))
	}
	var left []int64
	rows, _ := pool.Query(ctx, `SELECT id FROM login_attempts`)
	if left, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(left) != 1 || left[0] != fresh.ID {
		t.Fatalf("left %v (%v), want only the fresh attempt %d", left, err, fresh.ID)
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

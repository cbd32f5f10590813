package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// Decide reads the user's profile, the day's usage (created empty) and
// whether a secret is stored, and writes the events and the new usage in
// one transaction: a failing decision writes nothing, nor does one whose
// append fails in the committing round trip; an unknown user is
// KindNotFound.
func TestExecutionsDecide(t *testing.T) {
	ctx, pool, store, u := newOperator(t)
	execs := postgres.NewExecutions(store)
	day := domain.UTCDay(time.Now())
	ev := domain.Event{Type: "test.decided", SchemaVersion: 1, Data: map[string]string{}}
	decide := func(user string, ex domain.Exchange, fn func(app.ExecutionState) (app.Decided, error)) error {
		_, err := execs.Decide(ctx, app.DecideRequest{UserID: user, Exchange: ex, Day: day, Stream: domain.ExecutionStream(uuid.NewString())}, fn)
		return err
	}
	usage := func() (int, string) {
		var n int
		var notional string
		if err := pool.QueryRow(ctx, `SELECT orders, notional::text FROM execution_daily_usage WHERE user_id = $1`, u.ID()).Scan(&n, &notional); err != nil {
			t.Fatal(err)
		}
		return n, notional
	}

	var seen app.ExecutionState
	if err := decide(u.ID(), domain.ExchangeBinance, func(s app.ExecutionState) (app.Decided, error) {
		seen = s
		return app.Decided{Events: []domain.Event{ev}, Usage: domain.DailyUsage{Orders: 1, Notional: decimal.RequireFromString("950.5")}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen.Profile != domain.RiskProfileModel2 || seen.Usage.Orders != 0 || !seen.Usage.Notional.IsZero() || seen.SecretConfigured {
		t.Fatalf("state %+v", seen)
	}
	if n, notional := usage(); n != 1 || notional != "950.5" {
		t.Fatalf("usage %d %s", n, notional)
	}
	// A failing decision rolls everything back.
	boom := errors.New("boom")
	if err := decide(u.ID(), domain.ExchangeBinance, func(s app.ExecutionState) (app.Decided, error) { return app.Decided{}, boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	var events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM watermill_events WHERE event_type = 'test.decided'`).Scan(&events); err != nil || events != 1 {
		t.Fatalf("%d events %v", events, err)
	}
	// An append that fails in the committing round trip (the stream
	// exists) rolls the usage back with it.
	stream := domain.ExecutionStream(uuid.NewString())
	for i := range 2 {
		_, err := execs.Decide(ctx, app.DecideRequest{UserID: u.ID(), Exchange: domain.ExchangeBinance, Day: day, Stream: stream}, func(s app.ExecutionState) (app.Decided, error) {
			return app.Decided{Events: []domain.Event{ev}, Usage: domain.DailyUsage{Orders: s.Usage.Orders + 1, Notional: s.Usage.Notional}}, nil
		})
		if (i == 0 && err != nil) || (i == 1 && domain.ErrorKind(err) != domain.KindConflict) {
			t.Fatalf("decision %d on one stream: %v", i, err)
		}
	}
	if n, notional := usage(); n != 2 || notional != "950.5" {
		t.Fatalf("usage after a failed append %d %s", n, notional)
	}
	if _, err := pool.Exec(ctx, `UPDATE execution_daily_usage SET orders = 1 WHERE user_id = $1`, u.ID()); err != nil {
		t.Fatal(err)
	}
	// The state carries over; an IBKR secret shows for IBKR only.
	if _, err := pool.Exec(ctx, `INSERT INTO exchange_secrets (user_id, exchange, fields, updated_at) VALUES ($1, 'IBKR', '{"api_key": {"k1": "AAAA"}}', now())`, u.ID()); err != nil {
		t.Fatal(err)
	}
	for ex, want := range map[domain.Exchange]bool{domain.ExchangeBinance: false, domain.ExchangeIBKR: true} {
		if err := decide(u.ID(), ex, func(s app.ExecutionState) (app.Decided, error) {
			seen = s
			return app.Decided{Events: []domain.Event{ev}, Usage: s.Usage}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if seen.SecretConfigured != want || seen.Usage.Orders != 1 || seen.Usage.Notional.String() != "950.5" || seen.Secret != nil {
			t.Fatalf("%s: %+v", ex, seen)
		}
		// A test order reads the sealed secret in the same round trip.
		if _, err := execs.Decide(ctx, app.DecideRequest{UserID: u.ID(), Exchange: ex, Day: day, Stream: domain.ExecutionStream(uuid.NewString()), Secret: true},
			func(s app.ExecutionState) (app.Decided, error) {
				seen = s
				return app.Decided{}, boom
			}); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if (seen.Secret != nil) != want || want && (seen.Secret.UserID != u.ID() || seen.Secret.Exchange != ex || seen.Secret.Fields["api_key"]["k1"] == nil) {
			t.Fatalf("%s: secret %+v", ex, seen.Secret)
		}
	}
	err := decide(uuid.NewString(), domain.ExchangeBinance, func(s app.ExecutionState) (app.Decided, error) {
		t.Fatal("decided for an unknown user")
		return app.Decided{}, nil
	})
	if domain.ErrorKind(err) != domain.KindNotFound {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestExecutionsRememberedState: a decision made on the state this process
// remembers is checked against the stored one in its single round trip:
// after another process's decision or a profile change in between, nothing
// is written and the decision is made again on the fresh state.
func TestExecutionsRememberedState(t *testing.T) {
	ctx, pool, store, u := newOperator(t)
	day := domain.UTCDay(time.Now())
	ev := domain.Event{Type: "test.decided", SchemaVersion: 1, Data: map[string]string{}}
	// accept decides one more order on x and returns the states decide saw.
	accept := func(x *postgres.Executions) []app.ExecutionState {
		t.Helper()
		var seen []app.ExecutionState
		if _, err := x.Decide(ctx, app.DecideRequest{UserID: u.ID(), Exchange: domain.ExchangeBinance, Day: day, Stream: domain.ExecutionStream(uuid.NewString())},
			func(s app.ExecutionState) (app.Decided, error) {
				seen = append(seen, s)
				return app.Decided{Events: []domain.Event{ev}, Usage: domain.DailyUsage{Orders: s.Usage.Orders + 1, Notional: s.Usage.Notional.Add(decimal.NewFromInt(10))}}, nil
			}); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	orders := func(seen []app.ExecutionState) []int {
		var n []int
		for _, s := range seen {
			n = append(n, s.Usage.Orders)
		}
		return n
	}
	a, b := postgres.NewExecutions(store), postgres.NewExecutions(store)
	for i, c := range []struct {
		x    *postgres.Executions
		want []int
	}{
		{a, []int{0}},    // nothing remembered: the locking way
		{a, []int{1}},    // remembered and current: one round trip
		{b, []int{2}},    // another process
		{a, []int{2, 3}}, // a's memory is stale: decided again
		{a, []int{4}},
	} {
		if got := orders(accept(c.x)); !slices.Equal(got, c.want) {
			t.Fatalf("decision %d saw orders %v, want %v", i, got, c.want)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE users SET risk_profile = 'loose' WHERE id = $1`, u.ID()); err != nil {
		t.Fatal(err)
	}
	if seen := accept(a); len(seen) != 2 || seen[0].Profile != domain.RiskProfileModel2 || seen[1].Profile != domain.RiskProfileLoose {
		t.Fatalf("after a profile change: %+v", seen)
	}
	var n int
	var notional string
	if err := pool.QueryRow(ctx, `SELECT orders, notional::text FROM execution_daily_usage WHERE user_id = $1`, u.ID()).Scan(&n, &notional); err != nil || n != 6 || notional != "60" {
		t.Fatalf("usage %d %s %v", n, notional, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM watermill_events WHERE event_type = 'test.decided'`).Scan(&n); err != nil || n != 6 {
		t.Fatalf("%d events %v", n, err)
	}
}

// newOperator is a fresh database with one operator (model2).
func newOperator(t *testing.T) (context.Context, *pgxpool.Pool, *eventstore.Store, *domain.User) {
	t.Helper()
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	ctx := app.WithCaller(context.Background(), app.Caller{Email: "test", RequestID: "r1"})
	email, _ := domain.ParseEmail("operator@example.com")
	u, err := domain.NewUser(uuid.NewString(), email, domain.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewUsers(store, 0).Create(ctx, u, app.Credentials{PasswordHash: domain.NewSecret("h")}); err != nil {
		t.Fatal(err)
	}
	return ctx, pool, store, u
}

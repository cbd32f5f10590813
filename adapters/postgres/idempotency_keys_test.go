package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// A claim's life: claimed, held (in flight, then done with its response),
// released only while nothing was recorded, free again once expired, and
// taken over when abandoned before anything was recorded but never after.
func TestIdempotencyKeyClaims(t *testing.T) {
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	email, err := domain.ParseEmail("keys@example.com")
	if err != nil {
		t.Fatal(err)
	}
	u, err := domain.NewUser(uuid.NewString(), email, domain.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewUsers(store, 0).Create(ctx, u, app.Credentials{PasswordHash: domain.NewSecret("h")}); err != nil {
		t.Fatal(err)
	}
	keys, execs := postgres.NewIdempotencyKeys(pool), postgres.NewExecutions(store)
	now := time.Now().UTC().Truncate(time.Microsecond)
	claim := func(key string, hash byte, at time.Time) app.KeyClaim {
		t.Helper()
		c, err := keys.Claim(ctx, app.KeyRequest{UserID: u.ID(), Key: key, Hash: []byte{hash}, Now: at,
			ExpiredBefore: at.Add(-24 * time.Hour), AbandonedBefore: at.Add(-2 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ev := domain.Event{Type: "test.recorded", SchemaVersion: 1, Data: map[string]string{}}
	// record decides (no key update) and records the outcome with k.
	record := func(key string, k app.KeyUpdate) {
		t.Helper()
		k.UserID, k.Key = u.ID(), key
		stream := domain.ExecutionStream(uuid.NewString())
		if err := execs.Decide(ctx, u.ID(), domain.ExchangeBinance, domain.UTCDay(now), stream, func(s app.ExecutionState) (app.Decided, error) {
			return app.Decided{Events: []domain.Event{ev}, Usage: s.Usage}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := execs.Record(ctx, stream, []domain.Event{ev}, &k); err != nil {
			t.Fatal(err)
		}
	}

	if c := claim("a", 1, now); c.State != app.KeyClaimed {
		t.Fatalf("first claim: %+v", c)
	}
	if c := claim("a", 1, now); c.State != app.KeyInFlight || !c.SameRequest {
		t.Fatalf("repeat in flight: %+v", c)
	}
	if c := claim("a", 2, now); c.SameRequest {
		t.Fatalf("another request: %+v", c)
	}
	// Released: free for the next request.
	if err := keys.Release(ctx, u.ID(), "a"); err != nil {
		t.Fatal(err)
	}
	if c := claim("a", 2, now); c.State != app.KeyClaimed {
		t.Fatalf("after release: %+v", c)
	}
	// Done: the response comes back byte for byte (JSON, not JSONB).
	exec := uuid.NewString()
	body := []byte("{\"z\":1,  \"a\":2}\n")
	record("a", app.KeyUpdate{ExecutionID: exec, Done: &app.Response{Status: 502, Body: body}})
	if err := keys.Release(ctx, u.ID(), "a"); err != nil {
		t.Fatal(err)
	}
	c := claim("a", 2, now)
	if c.State != app.KeyDone || !c.SameRequest || c.Response.Status != 502 || string(c.Response.Body) != string(body) || c.ExecutionID != exec {
		t.Fatalf("done: %+v %q", c, c.Response.Body)
	}
	// Expired after 24 h.
	if c := claim("a", 3, now.Add(25*time.Hour)); c.State != app.KeyClaimed {
		t.Fatalf("expired: %+v", c)
	}

	// Abandoned before its decision: taken over after the lease.
	claim("b", 1, now)
	if c := claim("b", 1, now.Add(time.Minute)); c.State != app.KeyInFlight {
		t.Fatalf("within the lease: %+v", c)
	}
	if c := claim("b", 1, now.Add(3*time.Minute)); c.State != app.KeyClaimed {
		t.Fatalf("abandoned: %+v", c)
	}
	// Abandoned after its decision was recorded: held (it may have sent).
	claim("c", 1, now)
	record("c", app.KeyUpdate{ExecutionID: exec})
	if err := keys.Release(ctx, u.ID(), "c"); err != nil {
		t.Fatal(err)
	}
	if c := claim("c", 1, now.Add(3*time.Minute)); c.State != app.KeyInFlight || c.ExecutionID != exec || !c.ClaimedAt.Equal(now) {
		t.Fatalf("unfinished: %+v", c)
	}
	// A release after recording (the order was not taken in) frees it.
	record("c", app.KeyUpdate{ExecutionID: exec, Release: true})
	if c := claim("c", 1, now.Add(3*time.Minute)); c.State != app.KeyClaimed {
		t.Fatalf("after a release: %+v", c)
	}

	// Prune: a claim older than 24 h is deleted by a later claim.
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = $1 WHERE key = 'b'`, now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	claim("d", 1, now.Add(26*time.Hour))
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE key = 'b'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("expired claim not pruned: %d %v", n, err)
	}
}

package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// A claim's life: claimed by its decision (never before it: a failed
// decision leaves the key free), held while in flight, done with its
// response, released by an outcome the exchange did not take in, free again
// once expired; a repeat during the deciding transaction waits for it and
// finds the key held; a claim stored without its decision (by an earlier
// release) is taken over when abandoned.
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
	ev := domain.Event{Type: "test.recorded", SchemaVersion: 1, Data: map[string]string{}}
	request := func(key string, hash byte, at time.Time) app.KeyRequest {
		return app.KeyRequest{UserID: u.ID(), Key: key, Hash: []byte{hash}, Now: at,
			ExpiredBefore: at.Add(-24 * time.Hour), AbandonedBefore: at.Add(-2 * time.Minute)}
	}
	// decide claims the key in a decision that records exec on it (the
	// decision fails with fail).
	decide := func(key string, hash byte, at time.Time, exec string, fail error) (c app.KeyClaim, stream string, err error) {
		t.Helper()
		stream = domain.ExecutionStream(uuid.NewString())
		kr := request(key, hash, at)
		c, err = execs.Decide(ctx, app.DecideRequest{UserID: u.ID(), Exchange: domain.ExchangeBinance, Day: domain.UTCDay(now), Stream: stream, Key: &kr},
			func(s app.ExecutionState) (app.Decided, error) {
				return app.Decided{Events: []domain.Event{ev}, Usage: s.Usage, Key: &app.KeyUpdate{UserID: u.ID(), Key: key, ExecutionID: exec}}, fail
			})
		return c, stream, err
	}
	claim := func(key string, hash byte, at time.Time) (app.KeyClaim, string) {
		t.Helper()
		c, stream, err := decide(key, hash, at, uuid.NewString(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c, stream
	}
	record := func(stream, key string, k app.KeyUpdate) {
		t.Helper()
		k.UserID, k.Key = u.ID(), key
		if err := execs.Record(ctx, stream, []domain.Event{ev}, &k); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(key string, hash byte) (app.KeyClaim, bool) {
		t.Helper()
		c, found, err := keys.Lookup(ctx, request(key, hash, now))
		if err != nil {
			t.Fatal(err)
		}
		return c, found
	}

	// A failed decision claims nothing.
	boom := errors.New("boom")
	if _, _, err := decide("a", 1, now, uuid.NewString(), boom); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if c, found := lookup("a", 1); found {
		t.Fatalf("claimed by a failed decision: %+v", c)
	}
	c, stream := claim("a", 1, now)
	if c.State != app.KeyClaimed {
		t.Fatalf("first claim: %+v", c)
	}
	held, _ := lookup("a", 1)
	if c, _ := claim("a", 1, now); c.State != app.KeyInFlight || !c.SameRequest || c.ExecutionID == "" || c.ExecutionID != held.ExecutionID {
		t.Fatalf("repeat in flight: %+v", c)
	}
	if c, _ := claim("a", 2, now); c.SameRequest {
		t.Fatalf("another request: %+v", c)
	}
	// Done: the response comes back byte for byte (JSON, not JSONB).
	body := []byte("{\"z\":1,  \"a\":2}\n")
	record(stream, "a", app.KeyUpdate{ExecutionID: held.ExecutionID, Done: &app.Response{Status: 502, Body: body}})
	c, _ = claim("a", 1, now)
	if c.State != app.KeyDone || !c.SameRequest || c.Response.Status != 502 || string(c.Response.Body) != string(body) || c.ExecutionID != held.ExecutionID {
		t.Fatalf("done: %+v %q", c, c.Response.Body)
	}
	if l, found := lookup("a", 1); !found || l.State != app.KeyDone || string(l.Response.Body) != string(body) {
		t.Fatalf("lookup: %+v", l)
	}
	// Expired after 24 h.
	if c, _ := claim("a", 3, now.Add(25*time.Hour)); c.State != app.KeyClaimed {
		t.Fatalf("expired: %+v", c)
	}
	// Decided and never finished: held even after the lease (it may have
	// sent); released by an outcome the exchange did not take in.
	_, stream = claim("c", 1, now)
	if c, _ := claim("c", 1, now.Add(3*time.Minute)); c.State != app.KeyInFlight || c.ExecutionID == "" || !c.ClaimedAt.Equal(now) {
		t.Fatalf("unfinished: %+v", c)
	}
	record(stream, "c", app.KeyUpdate{Release: true})
	if c, _ := claim("c", 1, now.Add(3*time.Minute)); c.State != app.KeyClaimed {
		t.Fatalf("after a release: %+v", c)
	}
	// A claim stored without its decision (an earlier release did so) is
	// taken over after the lease.
	if _, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at) VALUES ($1, 'b', '\x01', 'pending', $2)`, u.ID(), now); err != nil {
		t.Fatal(err)
	}
	if c, _ := claim("b", 1, now.Add(time.Minute)); c.State != app.KeyInFlight {
		t.Fatalf("within the lease: %+v", c)
	}
	if c, _ := claim("b", 1, now.Add(3*time.Minute)); c.State != app.KeyClaimed {
		t.Fatalf("abandoned: %+v", c)
	}

	// Two requests with one key at once, one of them slow to decide:
	// exactly one claims the key with its decision, the other finds it held
	// by that decision (waiting for it when it meets its uncommitted claim),
	// whichever reaches the database first.
	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	first := make(chan app.KeyClaim, 1)
	exec := uuid.NewString()
	go func() {
		kr := request("e", 1, now)
		c, err := execs.Decide(ctx, app.DecideRequest{UserID: u.ID(), Exchange: domain.ExchangeBinance, Day: domain.UTCDay(now), Stream: domain.ExecutionStream(uuid.NewString()), Key: &kr},
			func(s app.ExecutionState) (app.Decided, error) {
				once.Do(func() { close(inside) })
				<-release
				return app.Decided{Events: []domain.Event{ev}, Usage: s.Usage, Key: &app.KeyUpdate{UserID: u.ID(), Key: "e", ExecutionID: exec}}, nil
			})
		if err != nil {
			t.Error(err)
		}
		first <- c
	}()
	<-inside
	second := make(chan app.KeyClaim, 1)
	go func() {
		c, _ := claim("e", 1, now)
		second <- c
	}()
	close(release)
	a, b := <-first, <-second
	held, _ = lookup("e", 1)
	switch {
	case a.State == app.KeyClaimed && b.State == app.KeyInFlight && b.ExecutionID == exec && held.ExecutionID == exec:
	case b.State == app.KeyClaimed && a.State == app.KeyInFlight && a.ExecutionID == held.ExecutionID && held.ExecutionID != exec:
	default:
		t.Fatalf("concurrent requests with one key: %+v, %+v (held by %s)", a, b, held.ExecutionID)
	}

	// Prune: a claim older than 24 h is deleted before a later claim.
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = $1 WHERE key = 'b'`, now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	claim("d", 1, now.Add(26*time.Hour))
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE key = 'b'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("expired claim not pruned: %d %v", n, err)
	}
}

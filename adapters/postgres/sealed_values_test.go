package postgres_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// TestCensusByKeyID: the census (key rotation's counts and the start-up key
// check's) counts every TOTP seed and every exchange secret field, and per
// key id the values holding a ciphertext under it; only JSON keys matter.
func TestCensusByKeyID(t *testing.T) {
	pool, _ := testdb.New(t)
	ctx := context.Background()
	store := eventstore.New(pool)
	values := postgres.NewSealedValues(store)
	got, err := values.Census(ctx)
	if want := (app.SealedCensus{ByKeyID: map[string]int{}}); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("empty store: %+v %v", got, err)
	}

	users := postgres.NewUsers(store, 0)
	var ids []string
	for i, sealed := range []app.Sealed{
		{"aaaa": []byte("x")},
		{"aaaa": []byte("x"), "bbbb": []byte("y")}, // mid-rotation
		{"cccc": []byte("z")},
		nil, // no 2FA
	} {
		email, _ := domain.ParseEmail(string(rune('a'+i)) + "@example.com")
		u, _ := domain.NewUser(uuid.NewString(), email, domain.RoleOperator)
		c := app.Credentials{PasswordHash: domain.NewSecret("h")}
		if sealed != nil {
			c.TOTP = &app.TOTPSeed{Sealed: sealed}
		}
		if err := users.Create(ctx, u, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID())
	}
	// Exchange secrets: one value per field.
	for _, s := range []struct{ user, exchange, fields string }{
		{ids[3], "BINANCE", `{"api_key": {"bbbb": "eA=="}, "api_secret": {"aaaa": "eA==", "bbbb": "eQ=="}}`},
		{ids[0], "IBKR", `{"account_id": {"dddd": "eA=="}}`},
	} {
		if _, err := pool.Exec(ctx, `INSERT INTO exchange_secrets (user_id, exchange, fields, updated_at) VALUES ($1, $2, $3, now())`,
			s.user, s.exchange, s.fields); err != nil {
			t.Fatal(err)
		}
	}
	got, err = values.Census(ctx)
	want := app.SealedCensus{Values: 6, ByKeyID: map[string]int{"aaaa": 3, "bbbb": 3, "cccc": 1, "dddd": 1}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v %v, want %+v", got, err, want)
	}
	if got.Lacking("bbbb") != 3 {
		t.Fatalf("lacking bbbb: %d", got.Lacking("bbbb"))
	}
}

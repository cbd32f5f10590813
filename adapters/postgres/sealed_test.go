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

func TestCountSealedByKeyID(t *testing.T) {
	pool, _ := testdb.New(t)
	ctx := context.Background()
	inventory := postgres.NewSealedInventory(pool)
	got, err := inventory.CountSealed(ctx)
	if want := []app.SealedCount{{Kind: "totp_seed", ByKeyID: map[string]int{}}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("empty store: %+v %v", got, err)
	}

	users := postgres.NewUsers(eventstore.New(pool), 0)
	for i, sealed := range []app.Sealed{
		{"aaaa": []byte("x")},
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
	}
	got, err = inventory.CountSealed(ctx)
	want := []app.SealedCount{{Kind: "totp_seed", Values: 4, ByKeyID: map[string]int{"aaaa": 3, "bbbb": 1, "cccc": 1}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v %v, want %+v", got, err, want)
	}
}

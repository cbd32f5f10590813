package projections

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

func (e testEnv) secretsStatusRows(t testing.TB) string {
	t.Helper()
	var s *string
	if err := e.pool.QueryRow(context.Background(), `SELECT string_agg(user_id::text || ' ' || exchange || ' ' || api_key_hint || ' ' || key_id || ' ' ||
		updated_at::text, E'\n' ORDER BY user_id, exchange) FROM exchange_secrets_status`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return ""
	}
	return *s
}

// The status follows configure/replace/delete in store order, whatever the
// batch boundaries; a bad event is quarantined; a rebuild equals the live
// rows; CaughtUp tells whether a user's latest change is applied.
func TestExchangeSecretsStatusProjection(t *testing.T) {
	e := newEnv(t)
	p := ExchangeSecretsStatus{}
	reader := NewExchangeSecretsStatusReader(e.pool)
	ctx := context.Background()
	u1, u2, u3 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	configured := func(user string, ex domain.Exchange, hint string) {
		e.appendOne(t, domain.ExchangeSecretsStream(user), user, domain.EventSecretConfigured,
			domain.ExchangeSecretConfigured{UserID: user, Exchange: ex, APIKeyHint: hint, KeyID: "00112233445566ff", Fields: []string{"api_key"}})
	}
	deleted := func(user string, ex domain.Exchange) {
		e.appendOne(t, domain.ExchangeSecretsStream(user), user, domain.EventSecretDeleted, domain.ExchangeSecretDeleted{UserID: user, Exchange: ex})
	}
	configured(u1, domain.ExchangeBinance, "****0001")
	configured(u1, domain.ExchangeIBKR, "****0002")
	configured(u1, domain.ExchangeBinance, "****0003") // replaced
	deleted(u1, domain.ExchangeIBKR)
	configured(u2, domain.ExchangeBinance, "****0004")
	deleted(u2, domain.ExchangeBinance)
	configured(u2, domain.ExchangeBinance, "****0005") // deleted, then configured again
	e.appendOne(t, "exchange-secrets-bad", "x", domain.EventSecretConfigured, map[string]string{"user_id": "not-a-uuid", "exchange": "BINANCE"})
	configured(u3, domain.ExchangeIBKR, "****0006")
	e.appendOne(t, "user-x", "x", domain.EventUserCreated, map[string]string{"user_id": "x"}) // not this projection's

	if ok, err := reader.CaughtUp(ctx, u1); err != nil || ok {
		t.Fatalf("caught up before any apply: %v %v", ok, err)
	}
	e.drain(t, p)
	for _, u := range []string{u1, u2, u3, uuid.NewString()} {
		if ok, err := reader.CaughtUp(ctx, u); err != nil || !ok {
			t.Fatalf("not caught up for %s: %v", u, err)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM projection_quarantine WHERE projection = $1`, p.Name()); n != 1 {
		t.Fatalf("%d quarantined, want the one bad event", n)
	}
	list, err := reader.List(ctx, u1)
	if err != nil || len(list) != 1 || list[0].Exchange != domain.ExchangeBinance || list[0].APIKeyHint != "****0003" || !list[0].Configured ||
		list[0].KeyID != "00112233445566ff" || list[0].UpdatedAt.IsZero() {
		t.Fatalf("u1: %+v %v", list, err)
	}
	want := fmt.Sprint(map[string]string{u1: "BINANCE ****0003", u2: "BINANCE ****0005", u3: "IBKR ****0006"})
	got := map[string]string{}
	for _, u := range []string{u1, u2, u3} {
		l, _ := reader.List(ctx, u)
		for _, s := range l {
			got[u] += string(s.Exchange) + " " + s.APIKeyHint
		}
	}
	if fmt.Sprint(got) != want {
		t.Fatalf("status %v, want %v", got, want)
	}
	live := e.secretsStatusRows(t)
	// A rebuild in batches of two (cutting through the sequences above)
	// yields the same rows.
	if _, err := Rebuild(ctx, e.pool, e.store, p, RebuildOptions{BatchSize: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	if rebuilt := e.secretsStatusRows(t); rebuilt != live {
		t.Fatalf("rebuilt:\n%s\nlive:\n%s", rebuilt, live)
	}
	// A prune moves the rows under a dropped key to the kept one; a secret
	// stored after it keeps its own.
	e.appendOne(t, domain.KeyringStream, "cli", domain.EventKeyRotationPrune,
		domain.KeysPruned{KeptKeyID: "aaaaaaaaaaaaaaaa", Values: 3, Dropped: map[string]int{"00112233445566ff": 3}})
	configured(u1, domain.ExchangeIBKR, "****0007")
	e.drain(t, p)
	for u, want := range map[string]string{u1: "BINANCE aaaaaaaaaaaaaaaa IBKR 00112233445566ff ", u2: "BINANCE aaaaaaaaaaaaaaaa "} {
		l, _ := reader.List(ctx, u)
		slices.SortFunc(l, func(a, b app.ExchangeSecretStatus) int {
			return strings.Compare(string(a.Exchange), string(b.Exchange))
		})
		got := ""
		for _, s := range l {
			got += string(s.Exchange) + " " + s.KeyID + " "
		}
		if got != want {
			t.Fatalf("after prune %s: %q, want %q", u, got, want)
		}
	}
	live = e.secretsStatusRows(t)
	if _, err := Rebuild(ctx, e.pool, e.store, p, RebuildOptions{BatchSize: 3, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	if rebuilt := e.secretsStatusRows(t); rebuilt != live {
		t.Fatalf("rebuilt after prune:\n%s\nlive:\n%s", rebuilt, live)
	}
	// A new change is not caught up until applied.
	deleted(u3, domain.ExchangeIBKR)
	if ok, _ := reader.CaughtUp(ctx, u3); ok {
		t.Fatal("caught up before the delete was applied")
	}
	e.drain(t, p)
	if l, _ := reader.List(ctx, u3); len(l) != 0 {
		t.Fatalf("u3 after delete: %+v", l)
	}
}

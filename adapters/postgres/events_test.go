package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// The store's concurrency sentinel is no domain error (the store imports no
// domain); the adapter classifies it as a conflict and keeps both.
func TestAppendConflictsAreClassifiedByTheAdapter(t *testing.T) {
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	if domain.ErrorKind(eventstore.ErrConcurrency) != domain.KindInternal {
		t.Fatal("the store's sentinel is a domain error")
	}
	const id = "3e6a1f0c-8f3b-4c1e-9b57-1d2f3a4b5c6d"
	// The user's stream exists already: creating the user must conflict.
	if _, err := store.Append(ctx, domain.UserStream(id), eventstore.NoStream, eventstore.Metadata{},
		eventstore.NewEvent{Type: "test.squatter", SchemaVersion: 1, Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	email, _ := domain.ParseEmail("e@example.com")
	u, _ := domain.NewUser(id, email, domain.RoleOperator)
	err := postgres.NewUsers(store, 0).Create(ctx, u, app.Credentials{PasswordHash: domain.NewSecret("h")})
	if domain.ErrorKind(err) != domain.KindConflict || !errors.Is(err, domain.ErrConcurrency) || !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("create over an existing stream: %v", err)
	}
}

// Events.Record appends with the caller's metadata, as every command does.
func TestEventsRecordCarriesTheCaller(t *testing.T) {
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	ctx := app.WithCaller(context.Background(), app.Caller{Email: "cli", RequestID: "run-1"})
	head := json.RawMessage(`{"count":3}`)
	if err := postgres.NewEvents(store).Record(ctx, domain.AuditSealStream, domain.NewAuditResealed(head, "ops@host")); err != nil {
		t.Fatal(err)
	}
	evs, err := store.ReadStream(ctx, nil, domain.AuditSealStream, 0)
	if err != nil || len(evs) != 1 || evs[0].Type != domain.EventAuditReseal {
		t.Fatalf("%+v %v", evs, err)
	}
	md := evs[0].Metadata
	if md.ActorEmail != "cli" || md.CorrelationID != "run-1" || md.CausationID != "run-1" || md.ActorID != "" {
		t.Fatalf("metadata %+v", md)
	}
	if string(evs[0].Data) != `{"operator":"ops@host","previous_head":{"count":3}}` {
		t.Fatalf("payload %s", evs[0].Data)
	}
}

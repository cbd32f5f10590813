package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// appendEvents appends domain events to stream inside tx, with the metadata
// of ctx's caller.
func appendEvents(ctx context.Context, store *eventstore.Store, tx pgx.Tx, stream string, expected eventstore.ExpectedVersion, events ...domain.Event) error {
	_, err := appendRecorded(ctx, store, tx, stream, expected, events...)
	return err
}

// appendRecorded is appendEvents, also returning when the events were recorded.
func appendRecorded(ctx context.Context, store *eventstore.Store, tx pgx.Tx, stream string, expected eventstore.ExpectedVersion, events ...domain.Event) (time.Time, error) {
	out := make([]eventstore.NewEvent, len(events))
	for i, e := range events {
		data, err := json.Marshal(e.Data)
		if err != nil {
			return time.Time{}, fmt.Errorf("marshal %s: %w", e.Type, err)
		}
		out[i] = eventstore.NewEvent{Type: e.Type, SchemaVersion: e.SchemaVersion, Data: data}
	}
	c := app.CallerFrom(ctx)
	// A command's events are caused by the request (or CLI run) that issued
	// it, which is also what correlates them.
	md := eventstore.Metadata{ActorID: c.UserID, ActorEmail: c.Email, CorrelationID: c.RequestID, CausationID: c.RequestID, ClientIP: c.ClientIP}
	res, err := store.AppendTx(ctx, tx, stream, expected, md, out...)
	if err != nil {
		return time.Time{}, fmt.Errorf("append to %s: %w", stream, err)
	}
	return res.RecordedAt, nil
}

// historyOf turns a stream read back into what an aggregate is loaded from.
func historyOf(stored []eventstore.Event) []domain.StoredEvent {
	history := make([]domain.StoredEvent, len(stored))
	for i, e := range stored {
		history[i] = domain.StoredEvent{Type: e.Type, SchemaVersion: e.SchemaVersion, Data: e.Data}
	}
	return history
}

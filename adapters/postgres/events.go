package postgres

import (
	"context"
	"encoding/json"
	"errors"
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

// queueAppend queues the append of events on b (see
// eventstore.Store.QueueAppend); read checks it among the batch's results.
func queueAppend(ctx context.Context, store *eventstore.Store, b *pgx.Batch, stream string, expected eventstore.ExpectedVersion, events ...domain.Event) (read func(pgx.BatchResults) error, err error) {
	out, err := storeEvents(events)
	if err != nil {
		return nil, err
	}
	appended, err := store.QueueAppend(b, stream, expected, callerMetadata(ctx), out...)
	if err != nil {
		return nil, err
	}
	return func(br pgx.BatchResults) error {
		if _, err := appended(br); err != nil {
			return appendError(stream, err)
		}
		return nil
	}, nil
}

// appendRecorded is appendEvents, also returning when the events were recorded.
func appendRecorded(ctx context.Context, store *eventstore.Store, tx pgx.Tx, stream string, expected eventstore.ExpectedVersion, events ...domain.Event) (time.Time, error) {
	out, err := storeEvents(events)
	if err != nil {
		return time.Time{}, err
	}
	res, err := store.AppendTx(ctx, tx, stream, expected, callerMetadata(ctx), out...)
	if err != nil {
		return time.Time{}, appendError(stream, err)
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

func storeEvents(events []domain.Event) ([]eventstore.NewEvent, error) {
	out := make([]eventstore.NewEvent, len(events))
	for i, e := range events {
		data, err := json.Marshal(e.Data)
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", e.Type, err)
		}
		out[i] = eventstore.NewEvent{Type: e.Type, SchemaVersion: e.SchemaVersion, Data: data}
	}
	return out, nil
}

// callerMetadata is the metadata of every event a command appends: a
// command's events are caused by the request (or CLI run) that issued it,
// which is also what correlates them.
func callerMetadata(ctx context.Context) eventstore.Metadata {
	c := app.CallerFrom(ctx)
	return eventstore.Metadata{ActorID: c.UserID, ActorEmail: c.Email, CorrelationID: c.RequestID, CausationID: c.RequestID, ClientIP: c.ClientIP}
}

// appendError classifies the store's concurrency sentinel as the domain's
// conflict (the store itself knows no domain); both stay in the chain.
func appendError(stream string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eventstore.ErrConcurrency):
		return fmt.Errorf("append to %s: %w: %w", stream, domain.ErrConcurrency, err)
	}
	return fmt.Errorf("append to %s: %w", stream, err)
}

// Events records events that come with no state of their own to write
// (app.EventRecorder), such as audit.reseal.
type Events struct{ store *eventstore.Store }

// NewEvents returns the recorder over store.
func NewEvents(store *eventstore.Store) *Events { return &Events{store: store} }

// Record implements app.EventRecorder: it appends to stream whatever its
// version, with the metadata of ctx's caller.
func (r *Events) Record(ctx context.Context, stream string, events ...domain.Event) error {
	out, err := storeEvents(events)
	if err != nil {
		return err
	}
	_, err = r.store.Append(ctx, stream, eventstore.Any, callerMetadata(ctx), out...)
	return appendError(stream, err)
}

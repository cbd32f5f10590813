package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// EventStore is what Reseal needs: to read the stream and to record itself.
type EventStore interface {
	EventReader
	Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, md eventstore.Metadata, events ...eventstore.NewEvent) (eventstore.AppendResult, error)
}

// SealRefusedError is returned by Reseal when the existing chain does not
// verify: re-sealing would launder the break.
type SealRefusedError struct{ Break *Break }

func (e *SealRefusedError) Error() string {
	return "refusing to re-seal: the existing chain does not verify: " + e.Break.String()
}

// resealStream holds the audit.reseal events.
const resealStream = "audit-seal"

// Reseal rebuilds audit_seal by replay, like Rebuild does other
// projections, but only when the existing chain verifies, and it
// records itself as an audit.reseal event by md's actor — with the head it
// replaces and the operator (OS user and host) who ran it — before
// re-sealing, so the new chain covers its own creation (or the live runner
// links it right after, had another transaction still hidden it at the
// swap).
func Reseal(ctx context.Context, pool *pgxpool.Pool, store EventStore, md eventstore.Metadata, operator string, opts RebuildOptions) (eventstore.Position, error) {
	rep, err := Verify(ctx, pool, nil)
	if err != nil {
		return eventstore.Position{}, err
	}
	if rep.Break != nil {
		return eventstore.Position{}, &SealRefusedError{Break: rep.Break}
	}
	data, err := json.Marshal(map[string]any{"previous_head": rep.Head, "operator": operator})
	if err != nil {
		return eventstore.Position{}, err
	}
	_, err = store.Append(ctx, resealStream, eventstore.Any, md,
		eventstore.NewEvent{Type: domain.EventAuditReseal, SchemaVersion: 1, Data: data})
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("record the re-seal: %w", err)
	}
	return rebuild(ctx, pool, store, AuditSeal{}, opts)
}

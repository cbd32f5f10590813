package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// AuditLog is the audit_log projection: one row per event — id, position,
// actor, subject (the user the event is about), type, time, stream and the
// payload with secrets redacted — indexed by actor, by subject and by type
// for the audit endpoints.
type AuditLog struct{}

func (AuditLog) Name() string { return "audit_log" }

// Version 2 added subject_id. Migration 005 brought stored version-1 rows to
// version 2 in place, so deployments did not have to rebuild.
func (AuditLog) Version() int     { return 2 }
func (AuditLog) Tables() []string { return []string{auditLogTable} }

const auditLogTable = "audit_log"

var auditLogColumns = []string{"transaction_id", "offset", "event_id", "actor_id", "actor_email", "subject_id", "event_type", "recorded_at", "stream_id", "data"}

// Apply copies the batch into the table: one COPY, no per-event statement.
// The subject is derived from the redacted payload, the bytes the row
// stores, so that migration 005's SQL, reading those rows, agrees with it.
func (AuditLog) Apply(ctx context.Context, tx pgx.Tx, t Tables, events []eventstore.Event) error {
	rows := make([][]any, len(events))
	for i, e := range events {
		data, err := redact(e.Data)
		if err != nil {
			return &DataError{EventID: e.ID, Err: fmt.Errorf("payload: %w", err)}
		}
		rows[i] = []any{e.TransactionID, e.Offset, e.ID, nullIfEmpty(e.Metadata.ActorID), nullIfEmpty(e.Metadata.ActorEmail),
			nullIfEmpty(domain.EventSubject(e.StreamID, data)), e.Type, e.RecordedAt, e.StreamID, []byte(data)}
	}
	_, err := tx.CopyFrom(ctx, t.Of(auditLogTable), auditLogColumns, pgx.CopyFromRows(rows))
	return err
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

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
// Rows are built as COPY pulls them — redacting a payload overlaps the
// server's work on the rows already sent — from pointers into the events
// and reused buffers, so a row costs no allocation of its own. The subject
// is derived from the redacted payload, the bytes the row stores, so that
// migration 005's SQL, reading those rows, agrees with it.
func (AuditLog) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.Event) error {
	var red redactor
	var data []byte
	var subject string
	var dataErr error
	row := make([]any, len(auditLogColumns))
	i := 0
	_, err := tx.CopyFrom(ctx, t.Of(auditLogTable), auditLogColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(events) {
			return nil, nil
		}
		e := &events[i]
		i++
		var err error
		if data, err = red.redact(e.Data); err != nil {
			dataErr = &DataError{EventID: e.ID, Err: fmt.Errorf("payload: %w", err)}
			return nil, dataErr
		}
		subject = domain.EventSubject(e.StreamID, data)
		row[0], row[1], row[2], row[3], row[4] = &e.TransactionID, &e.Offset, &e.ID, nullIfEmpty(&e.Metadata.ActorID), nullIfEmpty(&e.Metadata.ActorEmail)
		row[5], row[6], row[7], row[8], row[9] = nullIfEmpty(&subject), &e.Type, &e.RecordedAt, &e.StreamID, &data
		return row, nil
	}))
	if dataErr != nil {
		// The server answers the aborted COPY with its own error; the
		// event's is the one that counts (it is a poison event).
		return dataErr
	}
	return err
}

// nullIfEmpty is s, or NULL (an untyped nil) when *s is empty.
func nullIfEmpty(s *string) any {
	if *s == "" {
		return nil
	}
	return s
}

package projections

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
)

// AuditLogReader queries the audit_log read model (app.AuditLog).
type AuditLogReader struct{ q eventstore.Querier }

// NewAuditLogReader returns a reader over q (a pool).
func NewAuditLogReader(q eventstore.Querier) *AuditLogReader { return &AuditLogReader{q: q} }

// ListAudit returns the entries q selects, newest first. Each filter maps to
// an index prefix — (actor_id | lower(actor_email) | event_type, position
// desc) — so a page costs one short index range scan however long the log.
func (r *AuditLogReader) ListAudit(ctx context.Context, q app.AuditQuery) ([]app.AuditEntry, error) {
	var where []string
	var args []any
	add := func(cond string, vs ...any) {
		for _, v := range vs {
			args = append(args, v)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where = append(where, cond)
	}
	if q.ActorID != "" {
		add("actor_id = ?", q.ActorID)
	}
	if q.ActorEmail != "" {
		add("lower(actor_email) = lower(?)", q.ActorEmail)
	}
	if q.Type != "" {
		add("event_type = ?", q.Type)
	}
	if !q.Since.IsZero() {
		add("recorded_at >= ?", q.Since)
	}
	if q.Before != nil {
		add(`(transaction_id, "offset") < (?::xid8, ?)`, q.Before.TransactionID, q.Before.Offset)
	}
	sql := `SELECT transaction_id, "offset", event_id, coalesce(actor_id, ''), coalesce(actor_email, ''),
		event_type, recorded_at, stream_id, data::text FROM ` + auditLogTable
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit)
	sql += ` ORDER BY transaction_id DESC, "offset" DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := r.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (app.AuditEntry, error) {
		var e app.AuditEntry
		var data string
		err := row.Scan(&e.Cursor.TransactionID, &e.Cursor.Offset, &e.ID, &e.ActorID, &e.ActorEmail,
			&e.Type, &e.At, &e.Stream, &data)
		e.Data, e.At = []byte(data), e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return entries, nil
}

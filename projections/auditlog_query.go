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

const auditLogSelect = `SELECT transaction_id, "offset", event_id, coalesce(actor_id, ''), coalesce(actor_email, ''),
	coalesce(subject_id, ''), event_type, recorded_at, stream_id, data::text FROM ` + auditLogTable

const newestFirst = ` ORDER BY transaction_id DESC, "offset" DESC LIMIT `

// ListAudit returns the entries q selects, newest first, each page one or
// two short index range scans however long the log: (event_type, position
// desc) or the primary key without a user filter; with one, the user's
// events as actor, (actor_id, position desc), merged (Merge Append) with
// those about the user that someone else caused, (subject_id, position desc)
// — a partial index of exactly those rows, whose predicate the branch
// repeats word for word so that the planner can use it — so no event
// appears twice. Each branch stops at the limit.
func (r *AuditLogReader) ListAudit(ctx context.Context, q app.AuditQuery) ([]app.AuditEntry, error) {
	sql, args := auditQuerySQL(q)
	rows, err := r.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (app.AuditEntry, error) {
		var e app.AuditEntry
		var data string
		err := row.Scan(&e.Cursor.TransactionID, &e.Cursor.Offset, &e.ID, &e.ActorID, &e.ActorEmail, &e.SubjectID,
			&e.Type, &e.At, &e.Stream, &data)
		e.Data, e.At = []byte(data), e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return entries, nil
}

// auditQuerySQL builds ListAudit's statement.
func auditQuerySQL(q app.AuditQuery) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Type != "" {
		where = append(where, "event_type = "+arg(q.Type))
	}
	if !q.Since.IsZero() {
		where = append(where, "recorded_at >= "+arg(q.Since))
	}
	if q.Before != nil {
		where = append(where, `(transaction_id, "offset") < (`+arg(q.Before.TransactionID)+`::xid8, `+arg(q.Before.Offset)+`)`)
	}
	limit := arg(q.Limit)
	filter := func(conds ...string) string {
		if all := append(conds, where...); len(all) > 0 {
			return ` WHERE ` + strings.Join(all, " AND ")
		}
		return ""
	}
	sql := auditLogSelect + filter() + newestFirst + limit
	if q.UserID != "" {
		user := arg(q.UserID)
		sql = `SELECT * FROM ((` + auditLogSelect + filter("actor_id = "+user) + newestFirst + limit + `)
			UNION ALL (` + auditLogSelect + filter("subject_id = "+user, "subject_id IS DISTINCT FROM actor_id") + newestFirst + limit + `)) page` +
			newestFirst + limit
	}
	return sql, args
}

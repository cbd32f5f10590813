// Package projections builds tradeops' read models from the event stream:
// the live Runner, Rebuild by replay into shadow tables with an atomic swap,
// the audit_log, audit_seal and daily_risk_compare projections, and the
// seal's Verify.
//
// Every projection consumes the stream in store order and commits its rows
// together with its checkpoint — the pair (transaction_id, offset) — in one
// transaction per batch, so its effects are exactly-once and survive a kill -9
// at any point. Writes are set-based (COPY, or one upsert per table for a
// batch), never one statement per event.
package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tradeops/tradeops/eventstore"
)

// Projection is a read model fed by the event stream.
type Projection interface {
	// Name keys the projection's checkpoint, quarantine and rebuild state.
	Name() string
	// Version changes whenever Apply would write different rows for the
	// same events; a read model stored by another version must be rebuilt.
	Version() int
	// Tables are the read-model tables the projection writes. A rebuild
	// builds a shadow of each and swaps them in together.
	Tables() []string
	// Apply writes the effects of events (a gap-free run in store order)
	// into the tables named by t, inside tx, with set-based statements. It
	// returns an error when one of the events cannot be applied; the caller
	// then finds the poison event and quarantines it.
	Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.Event) error
}

// Tx is what Apply uses of the batch's transaction: statements and COPY.
// Savepoints are not Apply's to take (the runner isolates poison events
// with them), and the live runner's usual batch is a pooled connection
// inside a BEGIN it pipelined with the checkpoint lock, not a pgx.Tx.
type Tx interface {
	eventstore.Querier
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// All returns every projection the live runner keeps up to date. It is the
// one list serve, worker, `projections status|rebuild` and the benchmarks
// use, so none of them can miss a projection.
func All() []Projection {
	return []Projection{AuditLog{}, AuditSeal{}, ExchangeSecretsStatus{}, DailyRiskCompare{}}
}

// Tables names the physical tables a projection writes: the live ones, or
// the shadows a rebuild fills.
type Tables struct {
	suffix string
}

var (
	liveTables   = Tables{}
	shadowTables = Tables{suffix: shadowSuffix}
)

// Of returns the physical name of table.
func (t Tables) Of(table string) pgx.Identifier { return pgx.Identifier{table + t.suffix} }

const (
	shadowSuffix = "_shadow"
	oldSuffix    = "_old"
)

// isPoison tells whether an Apply error was caused by the events themselves
// (bad data: quarantine the culprit and go on) rather than by the system
// (connection lost, schema missing, cancelled: retry the batch later).
// Quarantining on a systemic error would skip good events, so anything not
// clearly about the data counts as systemic.
func isPoison(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return true
		}
		return false
	}
	var dataErr *DataError
	return errors.As(err, &dataErr)
}

// DataError is returned by a projection's Apply for an event it cannot
// interpret; the runner quarantines that event.
type DataError struct {
	EventID string
	Err     error
}

func (e *DataError) Error() string { return fmt.Sprintf("event %s: %v", e.EventID, e.Err) }
func (e *DataError) Unwrap() error { return e.Err }

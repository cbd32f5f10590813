package projections

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// applyBatch applies events with p inside tx. When the batch fails because
// of its data, it is bisected — each half applied in its own savepoint — down
// to the single events that fail; those are quarantined and skipped, the rest
// applied in order. A systemic failure aborts the whole batch instead. It
// returns how many events were quarantined.
func applyBatch(ctx context.Context, tx pgx.Tx, p Projection, t Tables, events []eventstore.Event, log *slog.Logger) (int, error) {
	err := inSavepoint(ctx, tx, func(sp pgx.Tx) error { return p.Apply(ctx, sp, t, events) })
	switch {
	case err == nil:
		return 0, nil
	case !isPoison(ctx, err):
		return 0, fmt.Errorf("apply %s: %w", p.Name(), err)
	case len(events) == 1:
		e := events[0]
		log.Warn("projection: quarantined a poison event", "projection", p.Name(),
			"position", e.Position.String(), "event_id", e.ID, "event_type", e.Type, "err", err)
		return 1, quarantine(ctx, tx, p.Name(), t == shadowTables, e, err)
	}
	mid := len(events) / 2
	a, err := applyBatch(ctx, tx, p, t, events[:mid], log)
	if err != nil {
		return 0, err
	}
	b, err := applyBatch(ctx, tx, p, t, events[mid:], log)
	return a + b, err
}

// inSavepoint runs f in a savepoint of tx, rolling back to it when f fails so
// that tx stays usable.
func inSavepoint(ctx context.Context, tx pgx.Tx, f func(pgx.Tx) error) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(sp); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

// maxErrorLen bounds the stored error text; a projection error is about the
// shape of the data, and a long one is noise.
const maxErrorLen = 2000

func quarantine(ctx context.Context, tx pgx.Tx, projection string, shadow bool, e eventstore.Event, cause error) error {
	msg := cause.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	_, err := tx.Exec(ctx, `INSERT INTO projection_quarantine
		(projection, shadow, transaction_id, "offset", event_id, event_type, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (projection, shadow, transaction_id, "offset")
		DO UPDATE SET error = excluded.error, quarantined_at = now()`,
		projection, shadow, e.TransactionID, e.Offset, e.ID, e.Type, msg)
	if err != nil {
		return fmt.Errorf("quarantine %s event %s: %w", projection, e.ID, err)
	}
	return nil
}

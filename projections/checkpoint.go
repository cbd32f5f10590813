package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// checkpoint is a projection's stored place in the stream.
type checkpoint struct {
	eventstore.Position
	Version int
}

// ensureCheckpoint creates p's checkpoint at the start of the stream unless
// it exists. A new projection therefore replays the whole stream.
func ensureCheckpoint(ctx context.Context, q eventstore.Querier, p Projection) error {
	_, err := q.Exec(ctx, `INSERT INTO projection_checkpoints (name, version) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, p.Name(), p.Version())
	if err != nil {
		return fmt.Errorf("create checkpoint of %s: %w", p.Name(), err)
	}
	return nil
}

// errBusy means another runner (or a rebuild's swap) holds the checkpoint.
var errBusy = errors.New("checkpoint locked elsewhere")

// lockCheckpoint locks name's checkpoint row for the rest of tx. With skip,
// a row locked elsewhere returns errBusy at once; otherwise it waits.
func lockCheckpoint(ctx context.Context, tx pgx.Tx, name string, skip bool) (checkpoint, error) {
	return scanCheckpoint(tx.QueryRow(ctx, lockCheckpointSQL(skip), name), name, skip)
}

// lockCheckpointSQL locks and reads the checkpoint named by $1.
func lockCheckpointSQL(skip bool) string {
	sql := `SELECT transaction_id, "offset", version FROM projection_checkpoints WHERE name = $1 FOR UPDATE`
	if skip {
		sql += ` SKIP LOCKED`
	}
	return sql
}

// scanCheckpoint reads the row of lockCheckpointSQL(skip) for name.
func scanCheckpoint(row pgx.Row, name string, skip bool) (checkpoint, error) {
	var c checkpoint
	err := row.Scan(&c.TransactionID, &c.Offset, &c.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		if skip {
			return c, errBusy
		}
		return c, fmt.Errorf("projection %s has no checkpoint", name)
	}
	if err != nil {
		return c, fmt.Errorf("lock checkpoint of %s: %w", name, err)
	}
	return c, nil
}

// checkVersion refuses to apply p over a read model another version wrote.
func (c checkpoint) checkVersion(p Projection) error {
	if c.Version != p.Version() {
		return fmt.Errorf("read model %s is at version %d but this build writes version %d: run `tradeops projections rebuild %s`",
			p.Name(), c.Version, p.Version(), p.Name())
	}
	return nil
}

func saveCheckpoint(ctx context.Context, tx pgx.Tx, name string, version int, pos eventstore.Position) error {
	if _, err := tx.Exec(ctx, saveCheckpointSQL, saveCheckpointArgs(name, version, pos)...); err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", name, err)
	}
	return nil
}

// saveCheckpointSQL moves a checkpoint (saveCheckpointArgs) and clears its
// error.
const saveCheckpointSQL = `UPDATE projection_checkpoints
		SET transaction_id = $2, "offset" = $3, version = $4, updated_at = now(), last_error = NULL
		WHERE name = $1`

func saveCheckpointArgs(name string, version int, pos eventstore.Position) []any {
	return []any{name, pos.TransactionID, pos.Offset, version}
}

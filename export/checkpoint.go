package export

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// Checkpoint is where an export stands: the position of the last event the
// broker acknowledged and its stream sequence.
type Checkpoint struct {
	eventstore.Position
	StreamSeq uint64
}

func ensureCheckpoint(ctx context.Context, q eventstore.Querier, name string) error {
	if _, err := q.Exec(ctx, `INSERT INTO export_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return fmt.Errorf("create export checkpoint %s: %w", name, err)
	}
	return nil
}

func readCheckpoint(ctx context.Context, q eventstore.Querier, name string) (Checkpoint, error) {
	var c Checkpoint
	var seq int64
	err := q.QueryRow(ctx, `SELECT transaction_id::text::bigint, "offset", stream_seq FROM export_checkpoints WHERE name = $1`, name).
		Scan(&c.TransactionID, &c.Offset, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read export checkpoint %s: %w", name, err)
	}
	c.StreamSeq = uint64(seq)
	return c, nil
}

// saveCheckpoint moves the checkpoint; published counts the events the
// broker stored (not the duplicates it dropped).
func saveCheckpoint(ctx context.Context, q eventstore.Querier, name string, c Checkpoint, published int) error {
	_, err := q.Exec(ctx, `UPDATE export_checkpoints SET transaction_id = $2::text::xid8, "offset" = $3, stream_seq = $4,
		published = published + $5, updated_at = now(), last_error = NULL WHERE name = $1`,
		name, formatSeq(c.TransactionID), c.Offset, int64(c.StreamSeq), published)
	if err != nil {
		return fmt.Errorf("save export checkpoint %s: %w", name, err)
	}
	return nil
}

// maxErrorLen bounds the stored last_error.
const maxErrorLen = 1000

func recordError(ctx context.Context, q eventstore.Querier, name string, err error) {
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	_, _ = q.Exec(ctx, `UPDATE export_checkpoints SET last_error = $2 WHERE name = $1`, name, msg)
}

// eventIDAt is the id of the event stored at pos ("" when there is none).
func eventIDAt(ctx context.Context, q eventstore.Querier, pos eventstore.Position) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT uuid FROM `+eventstore.Table+` WHERE transaction_id = $1::text::xid8 AND "offset" = $2`,
		formatSeq(pos.TransactionID), pos.Offset).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up the stream's last event in the store: %w", err)
	}
	return id, nil
}

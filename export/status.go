package export

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// Status is where an export stands in the store.
type Status struct {
	Name       string
	Started    bool // a relay created the checkpoint
	Checkpoint Checkpoint
	Published  int64
	UpdatedAt  time.Time
	LagEvents  int64
	LagSeconds float64
	LastError  string
}

var statusSQL = `
SELECT c.transaction_id::text::bigint, c."offset", c.stream_seq, c.published, c.updated_at, coalesce(c.last_error, ''),
	` + eventstore.LagColumns(`(c.transaction_id, c."offset")`) + `
FROM export_checkpoints c WHERE c.name = $1`

// ReadStatus reports on the export to stream name. Counting the lag reads
// the index range after the checkpoint: call it about once a second.
func ReadStatus(ctx context.Context, q eventstore.Querier, name string) (Status, error) {
	s := Status{Name: name}
	var seq int64
	err := q.QueryRow(ctx, statusSQL, name).Scan(&s.Checkpoint.TransactionID, &s.Checkpoint.Offset, &seq, &s.Published,
		&s.UpdatedAt, &s.LastError, &s.LagEvents, &s.LagSeconds)
	if errors.Is(err, pgx.ErrNoRows) {
		err = q.QueryRow(ctx, `SELECT count(*) FROM `+eventstore.Table+
			` WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`).Scan(&s.LagEvents)
		if err != nil {
			return s, fmt.Errorf("export status: %w", err)
		}
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("export status: %w", err)
	}
	s.Started, s.Checkpoint.StreamSeq = true, uint64(seq)
	return s, nil
}

// refreshGauges updates the lag gauges every second.
func (r *Relay) refreshGauges(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s, err := ReadStatus(ctx, r.pool, r.cfg.Stream); err == nil {
			r.metrics.lagEvents.Set(float64(s.LagEvents))
			r.metrics.lagSeconds.Set(s.LagSeconds)
		}
	}
}

package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// Status is where a projection stands.
type Status struct {
	Name string
	// State is "not started", "live" (caught up), "catching up", "failing"
	// (see LastError) or "stale" (stored at another version: rebuild it).
	State       string
	Version     int // of the stored read model
	CodeVersion int // this build writes
	Checkpoint  eventstore.Position
	UpdatedAt   time.Time
	LagEvents   int64
	LagSeconds  float64
	LastError   string
	Quarantined int64
	// Recent lists up to 10 of the latest quarantined events.
	Recent  []Quarantined
	Rebuild *RebuildStatus // nil unless a rebuild is in progress (or was killed)
}

// Quarantined is a poison event a projection skipped.
type Quarantined struct {
	Position eventstore.Position
	EventID  string
	Type     string
	Error    string
	At       time.Time
}

// RebuildStatus is the state of an unfinished rebuild.
type RebuildStatus struct {
	Phase      string
	Position   eventstore.Position
	EventsDone int64
	StartedAt  time.Time
	UpdatedAt  time.Time
}

var statusSQL = `
SELECT c.version, c.transaction_id, c."offset", c.updated_at, coalesce(c.last_error, ''),
	` + eventstore.LagColumns(`(c.transaction_id, c."offset")`) + `,
	(SELECT count(*) FROM projection_quarantine q WHERE q.projection = c.name AND NOT q.shadow),
	r.phase, r.transaction_id, r."offset", r.events_done, r.started_at, r.updated_at
FROM projection_checkpoints c LEFT JOIN projection_rebuilds r ON r.name = c.name
WHERE c.name = $1`

// ReadStatus reports on each of ps. Counting the lag reads the index range
// between the checkpoint and the head, so call it about once a second, not
// per request.
func ReadStatus(ctx context.Context, q eventstore.Querier, ps []Projection) ([]Status, error) {
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		s := Status{Name: p.Name(), CodeVersion: p.Version()}
		var phase *string
		var rXID *uint64
		var rOffset, rDone *int64
		var rStarted, rUpdated *time.Time
		err := q.QueryRow(ctx, statusSQL, p.Name()).Scan(&s.Version, &s.Checkpoint.TransactionID, &s.Checkpoint.Offset, &s.UpdatedAt, &s.LastError,
			&s.LagEvents, &s.LagSeconds, &s.Quarantined, &phase, &rXID, &rOffset, &rDone, &rStarted, &rUpdated)
		if errors.Is(err, pgx.ErrNoRows) {
			s.State = "not started"
			out = append(out, s)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", p.Name(), err)
		}
		if phase != nil {
			s.Rebuild = &RebuildStatus{Phase: *phase, EventsDone: *rDone, StartedAt: *rStarted, UpdatedAt: *rUpdated,
				Position: eventstore.Position{TransactionID: *rXID, Offset: *rOffset}}
		}
		switch {
		case s.Version != s.CodeVersion:
			s.State = "stale"
		case s.LastError != "":
			s.State = "failing"
		case s.LagEvents > 0:
			s.State = "catching up"
		default:
			s.State = "live"
		}
		if s.Quarantined > 0 {
			if s.Recent, err = recentQuarantine(ctx, q, p.Name()); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func recentQuarantine(ctx context.Context, q eventstore.Querier, name string) ([]Quarantined, error) {
	rows, err := q.Query(ctx, `SELECT transaction_id, "offset", event_id, event_type, error, quarantined_at
		FROM projection_quarantine WHERE projection = $1 AND NOT shadow
		ORDER BY transaction_id DESC, "offset" DESC LIMIT 10`, name)
	if err != nil {
		return nil, fmt.Errorf("quarantine of %s: %w", name, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Quarantined, error) {
		var e Quarantined
		err := row.Scan(&e.Position.TransactionID, &e.Position.Offset, &e.EventID, &e.Type, &e.Error, &e.At)
		return e, err
	})
}

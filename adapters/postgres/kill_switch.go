package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// KillSwitch stores the risk kill switch: the one row of risk_kill_switch,
// written with the risk.kill_switch.* event that changes it
// (app.KillSwitchRepository).
type KillSwitch struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
}

func NewKillSwitch(store *eventstore.Store) *KillSwitch {
	return &KillSwitch{store: store, pool: store.Pool()}
}

const killSwitchColumns = `engaged, reason, version, COALESCE(changed_by::text, ''), changed_at`

func scanKillSwitch(row pgx.Row) (app.KillSwitchState, int64, error) {
	var s app.KillSwitchState
	var version int64
	var at *time.Time
	if err := row.Scan(&s.Engaged, &s.Reason, &version, &s.ChangedBy, &at); err != nil {
		return s, 0, fmt.Errorf("read the kill switch: %w", err)
	}
	if at != nil {
		s.ChangedAt = at.UTC()
	}
	return s, version, nil
}

func (r *KillSwitch) Get(ctx context.Context) (app.KillSwitchState, error) {
	s, _, err := scanKillSwitch(r.pool.QueryRow(ctx, `SELECT `+killSwitchColumns+` FROM risk_kill_switch`))
	return s, err
}

func (r *KillSwitch) Update(ctx context.Context, set func(domain.KillSwitch) (domain.KillSwitch, *domain.Event, error)) (app.KillSwitchState, error) {
	var out app.KillSwitchState
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		cur, version, err := scanKillSwitch(tx.QueryRow(ctx, `SELECT `+killSwitchColumns+` FROM risk_kill_switch FOR UPDATE`))
		if err != nil {
			return err
		}
		next, ev, err := set(domain.RestoreKillSwitch(cur.Engaged, cur.Reason, version))
		if err != nil || ev == nil {
			out = cur
			return err
		}
		at, err := appendRecorded(ctx, r.store, tx, domain.KillSwitchStream, eventstore.Exact(version), *ev)
		if err != nil {
			return err
		}
		out = app.KillSwitchState{Engaged: next.Engaged(), Reason: next.Reason(), ChangedBy: app.CallerFrom(ctx).UserID, ChangedAt: at}
		_, err = tx.Exec(ctx, `UPDATE risk_kill_switch SET engaged = $1, reason = $2, version = $3, changed_by = $4, changed_at = $5`,
			out.Engaged, out.Reason, next.Version(), out.ChangedBy, at)
		if err != nil {
			return fmt.Errorf("write the kill switch: %w", err)
		}
		return nil
	})
	return out, err
}

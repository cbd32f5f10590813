package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
)

// DailyRiskReader queries the daily_risk_compare read model
// (app.DailyRiskReader).
type DailyRiskReader struct{ q eventstore.Querier }

// NewDailyRiskReader returns a reader over q (a pool).
func NewDailyRiskReader(q eventstore.Querier) *DailyRiskReader { return &DailyRiskReader{q: q} }

// dailyRiskSelect reads a range of days with their failed-check counts in
// one statement (one snapshot: the counters and the checks agree), both by
// primary-key range scans. Notionals come back in their shortest exact
// form (trim_scale: "0.3", not "0.30").
const dailyRiskSelect = `SELECT d.day, d.profile, d.prepares, d.accepted, d.rejected,
		trim_scale(d.notional_requested)::text, trim_scale(d.notional_accepted)::text,
		d.binance_ok, d.binance_error, d.ibkr_ok, d.ibkr_error, d.divergent,
		coalesce((SELECT jsonb_object_agg(c.code, c.rejected) FROM ` + dailyRiskChecksTable + ` c
			WHERE c.day = d.day AND c.profile = d.profile), '{}')
	FROM ` + dailyRiskTable + ` d
	WHERE d.day BETWEEN $1 AND $2`

// DailyRisk returns the stored rows of the days from..to, both included.
func (r *DailyRiskReader) DailyRisk(ctx context.Context, from, to time.Time) ([]app.DailyRiskRow, error) {
	rows, err := r.q.Query(ctx, dailyRiskSelect, from, to)
	if err != nil {
		return nil, fmt.Errorf("daily risk compare: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (app.DailyRiskRow, error) {
		var d app.DailyRiskRow
		err := row.Scan(&d.Day, &d.Profile, &d.Prepares, &d.Accepted, &d.Rejected,
			&d.NotionalRequested, &d.NotionalAccepted,
			&d.BinanceOK, &d.BinanceError, &d.IBKROK, &d.IBKRError, &d.Divergent, &d.RejectedByCheck)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("daily risk compare: %w", err)
	}
	return out, nil
}

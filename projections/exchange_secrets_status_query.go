package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// ExchangeSecretsStatusReader queries the exchange_secrets_status read
// model (app.ExchangeSecretsStatus).
type ExchangeSecretsStatusReader struct{ q eventstore.Querier }

// NewExchangeSecretsStatusReader returns a reader over q (a pool).
func NewExchangeSecretsStatusReader(q eventstore.Querier) *ExchangeSecretsStatusReader {
	return &ExchangeSecretsStatusReader{q: q}
}

// CaughtUp implements app.ExchangeSecretsStatus: no event of the user's
// secrets stream lies beyond the projection's checkpoint. It reads the
// stream through its (stream_id, stream_version) index: a handful of rows.
func (r *ExchangeSecretsStatusReader) CaughtUp(ctx context.Context, userID string) (bool, error) {
	var ok bool
	err := r.q.QueryRow(ctx, `SELECT NOT EXISTS (
		SELECT 1 FROM `+eventstore.Table+` e LEFT JOIN projection_checkpoints c ON c.name = $2
		WHERE e.stream_id = $1 AND (c.name IS NULL OR (e.transaction_id, e."offset") > (c.transaction_id, c."offset")))`,
		domain.ExchangeSecretsStream(userID), ExchangeSecretsStatus{}.Name()).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("secrets status position: %w", err)
	}
	return ok, nil
}

// List implements app.ExchangeSecretsStatus.
func (r *ExchangeSecretsStatusReader) List(ctx context.Context, userID string) ([]app.ExchangeSecretStatus, error) {
	rows, err := r.q.Query(ctx, `SELECT exchange, api_key_hint, key_id, updated_at FROM `+secretsStatusTable+` WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("list secrets status: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (app.ExchangeSecretStatus, error) {
		s := app.ExchangeSecretStatus{Configured: true}
		err := row.Scan(&s.Exchange, &s.APIKeyHint, &s.KeyID, &s.UpdatedAt)
		s.UpdatedAt = s.UpdatedAt.UTC()
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list secrets status: %w", err)
	}
	return out, nil
}

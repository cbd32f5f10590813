package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

var errSecretNotConfigured = domain.Errorf(domain.KindNotFound, "exchange_secret_not_configured", "no credentials are stored for this exchange")

// ExchangeSecrets stores sealed exchange credentials (app.ExchangeSecretRepository):
// the exchange_secrets row and its event in the exchange-secrets-<user id>
// stream, in one transaction.
type ExchangeSecrets struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
}

func NewExchangeSecrets(store *eventstore.Store) *ExchangeSecrets {
	return &ExchangeSecrets{store: store, pool: store.Pool()}
}

// Put implements app.ExchangeSecretRepository. The row is written first: two
// writes of one row queue on its lock, so their events land in the order
// the rows were written; the append (expected version Any) queues on the
// stream's lock.
func (r *ExchangeSecrets) Put(ctx context.Context, s app.StoredExchangeSecret, e domain.Event) (time.Time, error) {
	raw, err := json.Marshal(s.Fields)
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO exchange_secrets (user_id, exchange, fields, updated_at) VALUES ($1, $2, $3, now())
			ON CONFLICT (user_id, exchange) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at`,
			s.UserID, s.Exchange, raw)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return errUserNotFound
		}
		if err != nil {
			return fmt.Errorf("store exchange secret: %w", err)
		}
		at, err = appendRecorded(ctx, r.store, tx, domain.ExchangeSecretsStream(s.UserID), eventstore.Any, e)
		return err
	})
	return at, err
}

// Delete implements app.ExchangeSecretRepository.
func (r *ExchangeSecrets) Delete(ctx context.Context, userID string, ex domain.Exchange, e domain.Event) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM exchange_secrets WHERE user_id = $1 AND exchange = $2`, userID, ex)
		if err != nil {
			return fmt.Errorf("delete exchange secret: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errSecretNotConfigured
		}
		return appendEvents(ctx, r.store, tx, domain.ExchangeSecretsStream(userID), eventstore.Any, e)
	})
}

// Get implements app.ExchangeSecretRepository.
func (r *ExchangeSecrets) Get(ctx context.Context, userID string, ex domain.Exchange) (app.StoredExchangeSecret, error) {
	s := app.StoredExchangeSecret{UserID: userID, Exchange: ex}
	var raw []byte
	err := r.pool.QueryRow(ctx, `SELECT fields FROM exchange_secrets WHERE user_id = $1 AND exchange = $2`, userID, ex).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errSecretNotConfigured
	}
	if err != nil {
		return s, fmt.Errorf("read exchange secret: %w", err)
	}
	s.Fields, err = decodeSecretFields(raw, userID, ex)
	return s, err
}

// decodeSecretFields decodes a stored row's fields column.
func decodeSecretFields(raw []byte, userID string, ex domain.Exchange) (map[string]app.Sealed, error) {
	var fields map[string]app.Sealed
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("%s secret of user %s: %w", ex, userID, err)
	}
	return fields, nil
}

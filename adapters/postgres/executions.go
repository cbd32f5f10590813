package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// Executions stores the execution commands' events together with the
// per-user daily usage and the Idempotency-Key updates (app.Executions).
type Executions struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
}

func NewExecutions(store *eventstore.Store) *Executions {
	return &Executions{store: store, pool: store.Pool()}
}

// Decide implements app.Executions. Round trips: BEGIN; one batch that
// inserts the usage row when missing and locks it (reading the profile and
// whether a secret is stored on the way); the append; one batch with the
// usage and key writes; COMMIT. In READ COMMITTED a prepare that waited for
// the lock reads the row as the previous holder committed it.
func (r *Executions) Decide(ctx context.Context, userID string, ex domain.Exchange, day, stream string, decide func(app.ExecutionState) (app.Decided, error)) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO execution_daily_usage (user_id, day) VALUES ($1, $2::date) ON CONFLICT (user_id, day) DO NOTHING`, userID, day)
		b.Queue(`SELECT d.orders, d.notional::text, u.risk_profile,
				EXISTS (SELECT 1 FROM exchange_secrets s WHERE s.user_id = d.user_id AND s.exchange = $3)
			FROM execution_daily_usage d JOIN users u ON u.id = d.user_id
			WHERE d.user_id = $1 AND d.day = $2::date
			FOR UPDATE OF d`, userID, day, string(ex))
		var (
			st       app.ExecutionState
			notional string
			profile  string
		)
		err := readBatch(tx.SendBatch(ctx, b), func(br pgx.BatchResults) error {
			if _, err := br.Exec(); err != nil {
				return err
			}
			return br.QueryRow().Scan(&st.Usage.Orders, &notional, &profile, &st.SecretConfigured)
		})
		var pgErr *pgconn.PgError
		switch {
		case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && pgErr.Code == "23503":
			return errUserNotFound
		case err != nil:
			return fmt.Errorf("lock the daily usage of user %s: %w", userID, err)
		}
		if st.Usage.Notional, err = decimal.NewFromString(notional); err != nil {
			return fmt.Errorf("daily usage notional %q: %w", notional, err)
		}
		st.Profile = domain.RiskProfile(profile)
		d, err := decide(st)
		if err != nil {
			return err
		}
		// A new execution's stream: NoStream needs no lock, and a clash of
		// generated ids would fail rather than mix two executions.
		if err := appendEvents(ctx, r.store, tx, stream, eventstore.NoStream, d.Events...); err != nil {
			return err
		}
		b = &pgx.Batch{}
		if d.Usage.Orders != st.Usage.Orders || !d.Usage.Notional.Equal(st.Usage.Notional) {
			b.Queue(`UPDATE execution_daily_usage SET orders = $3, notional = $4::numeric WHERE user_id = $1 AND day = $2::date`,
				userID, day, d.Usage.Orders, d.Usage.Notional.String())
		}
		queueKeyUpdate(b, d.Key)
		return execBatch(ctx, tx, b)
	})
}

// Record implements app.Executions. The stream holds the decision alone,
// so the append expects version 1: one statement, no lock, and a second
// outcome for one execution would fail rather than pile up.
func (r *Executions) Record(ctx context.Context, stream string, events []domain.Event, key *app.KeyUpdate) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if err := appendEvents(ctx, r.store, tx, stream, eventstore.Exact(1), events...); err != nil {
			return err
		}
		b := &pgx.Batch{}
		queueKeyUpdate(b, key)
		return execBatch(ctx, tx, b)
	})
}

// queueKeyUpdate queues the write of an Idempotency-Key update, if any.
func queueKeyUpdate(b *pgx.Batch, k *app.KeyUpdate) {
	switch {
	case k == nil:
	case k.Release:
		b.Queue(`DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2`, k.UserID, k.Key)
	case k.Done != nil:
		b.Queue(`UPDATE idempotency_keys SET state = 'done', execution_id = $3, status = $4, response = $5, retry_after = $6
			WHERE user_id = $1 AND key = $2`, k.UserID, k.Key, k.ExecutionID, k.Done.Status, k.Done.Body, k.Done.RetryAfter)
	default:
		b.Queue(`UPDATE idempotency_keys SET execution_id = $3 WHERE user_id = $1 AND key = $2`, k.UserID, k.Key, k.ExecutionID)
	}
}

// readBatch reads a batch's results with read and closes it.
func readBatch(br pgx.BatchResults, read func(pgx.BatchResults) error) error {
	err := read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// execBatch sends b, when it holds anything, and checks every statement.
func execBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	return readBatch(tx.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		for range b.Len() {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
}

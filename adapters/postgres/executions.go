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
	store  *eventstore.Store
	pool   *pgxpool.Pool
	keys   *IdempotencyKeys
	states executionStates
	groups decisionGroups
}

func NewExecutions(store *eventstore.Store) *Executions {
	r := &Executions{store: store, pool: store.Pool(), keys: NewIdempotencyKeys(store.Pool())}
	r.groups.r = r
	return r
}

// Decide implements app.Executions in two round trips and one commit:
//
//  1. BEGIN; the key's claim (with one); insert the usage row when missing;
//     lock it, reading the profile, whether a secret is stored and the
//     kill switch;
//  2. (after deciding) the append; the usage and key writes; COMMIT.
//
// BEGIN and COMMIT travel in the batches (PostgreSQL turns a batch's
// implicit transaction into the explicit one BEGIN opens), so the row lock
// is held across the decision as with separate statements. In READ
// COMMITTED a decision that waited for the lock reads the row as the
// previous holder committed it, and a claim that met an uncommitted claim
// of the same key waits for it and then finds it held.
func (r *Executions) Decide(ctx context.Context, req app.DecideRequest, decide func(app.ExecutionState) (app.Decided, error)) (app.KeyClaim, error) {
	claimed := app.KeyClaim{State: app.KeyClaimed, SameRequest: true}
	if req.Key != nil {
		claimed.ClaimedAt = req.Key.Now
		if err := r.keys.prune(ctx, *req.Key); err != nil {
			return app.KeyClaim{}, err
		}
	}
	// A request for the secret reads it in the locking transaction: the
	// remembered state never holds it.
	if !req.Secret {
		if done, err := r.groups.decide(ctx, req, decide); done {
			if err != nil {
				return app.KeyClaim{}, err
			}
			return claimed, nil
		}
	}
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return app.KeyClaim{}, fmt.Errorf("decide: %w", err)
	}
	// A connection left inside a transaction (a failed ROLLBACK) is closed
	// by the pool on release, never reused.
	defer conn.Release()
	claim, err := r.decide(ctx, conn.Conn(), req, decide)
	if err != nil || claim != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		if claim != nil {
			return *claim, err
		}
		return app.KeyClaim{}, err
	}
	return claimed, nil
}

// decide is Decide on conn: a non-nil claim is the holder of the key, and
// the transaction is left for the caller to roll back, as on an error.
func (r *Executions) decide(ctx context.Context, conn *pgx.Conn, req app.DecideRequest, decide func(app.ExecutionState) (app.Decided, error)) (*app.KeyClaim, error) {
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	if req.Key != nil {
		queueClaim(b, claimSQL, *req.Key)
	}
	b.Queue(`INSERT INTO execution_daily_usage (user_id, day) VALUES ($1, $2::date) ON CONFLICT (user_id, day) DO NOTHING`, req.UserID, req.Day)
	b.Queue(`SELECT d.orders, d.notional::text, u.risk_profile, s.user_id IS NOT NULL, CASE WHEN $4 THEN s.fields END,
			(SELECT engaged FROM risk_kill_switch)
		FROM execution_daily_usage d JOIN users u ON u.id = d.user_id
			LEFT JOIN exchange_secrets s ON s.user_id = d.user_id AND s.exchange = $3
		WHERE d.user_id = $1 AND d.day = $2::date
		FOR UPDATE OF d`, req.UserID, req.Day, string(req.Exchange), req.Secret)
	var (
		st       app.ExecutionState
		notional string
		profile  string
		fields   []byte
		claimed  = true
	)
	err := readBatch(conn.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if req.Key != nil {
			var err error
			if claimed, err = readClaim(br); err != nil {
				return err
			}
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.QueryRow().Scan(&st.Usage.Orders, &notional, &profile, &st.SecretConfigured, &fields, &st.Halted)
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && pgErr.Code == "23503":
		return nil, errUserNotFound
	case err != nil:
		return nil, fmt.Errorf("lock the daily usage of user %s: %w", req.UserID, err)
	case !claimed:
		c, claimedNow, err := r.keys.retryClaim(ctx, conn, *req.Key)
		if err != nil || !claimedNow {
			return &c, err
		}
	}
	if st.Usage.Notional, err = decimal.NewFromString(notional); err != nil {
		return nil, fmt.Errorf("daily usage notional %q: %w", notional, err)
	}
	st.Profile = domain.RiskProfile(profile)
	if fields != nil {
		st.Secret = &app.StoredExchangeSecret{UserID: req.UserID, Exchange: req.Exchange}
		if st.Secret.Fields, err = decodeSecretFields(fields, req.UserID, req.Exchange); err != nil {
			return nil, err
		}
	}
	d, err := decide(st)
	if err != nil {
		return nil, err
	}
	b = &pgx.Batch{}
	// A new execution's stream: NoStream needs no lock, and a clash of
	// generated ids would fail rather than mix two executions.
	appended, err := queueAppend(ctx, r.store, b, req.Stream, eventstore.NoStream, d.Events...)
	if err != nil {
		return nil, err
	}
	if d.Usage.Orders != st.Usage.Orders || !d.Usage.Notional.Equal(st.Usage.Notional) {
		b.Queue(`UPDATE execution_daily_usage SET orders = $3, notional = $4::numeric WHERE user_id = $1 AND day = $2::date`,
			req.UserID, req.Day, d.Usage.Orders, d.Usage.Notional.String())
	}
	queueKeyUpdate(b, d.Key)
	b.Queue(`COMMIT`)
	if err := sendWrites(ctx, conn, b, 0, appended); err != nil {
		return nil, err
	}
	st.Usage = d.Usage
	r.states.put(req, st)
	return nil, nil
}

// Record implements app.Executions in one round trip: the append and the
// key's update are one batch, which PostgreSQL runs as one (implicit)
// transaction. The stream holds the decision alone, so the append expects
// version 1: one statement, no lock, and a second outcome for one
// execution would fail rather than pile up.
func (r *Executions) Record(ctx context.Context, stream string, events []domain.Event, key *app.KeyUpdate) error {
	b := &pgx.Batch{}
	appended, err := queueAppend(ctx, r.store, b, stream, eventstore.Exact(1), events...)
	if err != nil {
		return err
	}
	queueKeyUpdate(b, key)
	return sendWrites(ctx, r.pool, b, 0, appended)
}

// batchSender is a pool or a connection.
type batchSender interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

// sendWrites sends a batch of writes and reads its results: before
// statements, the queued append (appended), then every statement after it.
func sendWrites(ctx context.Context, q batchSender, b *pgx.Batch, before int, appended func(pgx.BatchResults) error) error {
	after := b.Len() - before - 1
	return readBatch(q.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		return readWrites(br, before, appended, after)
	})
}

// readWrites reads the results of a run of writes in a batch: before
// statements, the queued append (appended), then after statements.
func readWrites(br pgx.BatchResults, before int, appended func(pgx.BatchResults) error, after int) error {
	for range before {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	if err := appended(br); err != nil {
		return err
	}
	for range after {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
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

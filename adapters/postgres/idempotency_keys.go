package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
)

// IdempotencyKeys stores Idempotency-Key claims (app.IdempotencyKeys) in
// idempotency_keys; the commands' transactions complete them
// (Executions). Expired claims are pruned opportunistically, at most once a
// minute per process, by a claim.
type IdempotencyKeys struct {
	pool      *pgxpool.Pool
	lastPrune atomic.Int64 // unix nanoseconds
}

func NewIdempotencyKeys(pool *pgxpool.Pool) *IdempotencyKeys { return &IdempotencyKeys{pool: pool} }

const (
	keyPruneEvery = time.Minute
	keyPruneBatch = 1000
)

// Claim implements app.IdempotencyKeys: one statement claims a free key
// (new, expired or abandoned); otherwise the holder's claim is read. A
// holder that released the key in between is retried.
func (k *IdempotencyKeys) Claim(ctx context.Context, r app.KeyRequest) (app.KeyClaim, error) {
	if err := k.prune(ctx, r); err != nil {
		return app.KeyClaim{}, err
	}
	for attempt := 0; ; attempt++ {
		var one int
		err := k.pool.QueryRow(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at)
			VALUES ($1, $2, $3, 'pending', $4)
			ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash, state = 'pending',
				execution_id = NULL, status = NULL, response = NULL, retry_after = 0, created_at = excluded.created_at
			WHERE idempotency_keys.created_at < $5
				OR (idempotency_keys.state = 'pending' AND idempotency_keys.execution_id IS NULL AND idempotency_keys.created_at < $6)
			RETURNING 1`, r.UserID, r.Key, r.Hash, r.Now, r.ExpiredBefore, r.AbandonedBefore).Scan(&one)
		switch {
		case err == nil:
			return app.KeyClaim{State: app.KeyClaimed, SameRequest: true, ClaimedAt: r.Now}, nil
		case !errors.Is(err, pgx.ErrNoRows):
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23503" {
				return app.KeyClaim{}, errUserNotFound
			}
			return app.KeyClaim{}, fmt.Errorf("claim an idempotency key: %w", err)
		}
		c, found, err := k.holder(ctx, r)
		if err != nil || found {
			return c, err
		}
		if attempt == 2 {
			// Claimed and released over and over: someone is busy with it.
			return app.KeyClaim{State: app.KeyInFlight, SameRequest: true, ClaimedAt: r.Now}, nil
		}
	}
}

// holder reads the claim that holds r.Key; found is false when it is gone.
func (k *IdempotencyKeys) holder(ctx context.Context, r app.KeyRequest) (app.KeyClaim, bool, error) {
	var (
		c     app.KeyClaim
		hash  []byte
		state string
		exec  *string
		stat  *int
	)
	err := k.pool.QueryRow(ctx, `SELECT request_hash, state, execution_id::text, status, response::text, retry_after, created_at
		FROM idempotency_keys WHERE user_id = $1 AND key = $2`, r.UserID, r.Key).
		Scan(&hash, &state, &exec, &stat, &c.Response.Body, &c.Response.RetryAfter, &c.ClaimedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("read an idempotency key: %w", err)
	}
	c.SameRequest = bytes.Equal(hash, r.Hash)
	c.State = app.KeyInFlight
	if state == "done" {
		c.State = app.KeyDone
	}
	if exec != nil {
		c.ExecutionID = *exec
	}
	if stat != nil {
		c.Response.Status = *stat
	}
	return c, true, nil
}

// Release implements app.IdempotencyKeys. Only a claim under which nothing
// was recorded is freed.
func (k *IdempotencyKeys) Release(ctx context.Context, userID, key string) error {
	_, err := k.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'pending' AND execution_id IS NULL`, userID, key)
	if err != nil {
		return fmt.Errorf("release an idempotency key: %w", err)
	}
	return nil
}

// prune deletes a batch of expired claims when the last prune of this
// process is a minute old.
func (k *IdempotencyKeys) prune(ctx context.Context, r app.KeyRequest) error {
	last := k.lastPrune.Load()
	if r.Now.UnixNano()-last < int64(keyPruneEvery) || !k.lastPrune.CompareAndSwap(last, r.Now.UnixNano()) {
		return nil
	}
	_, err := k.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2))`, r.ExpiredBefore, keyPruneBatch)
	if err != nil {
		return fmt.Errorf("prune expired idempotency keys: %w", err)
	}
	return nil
}

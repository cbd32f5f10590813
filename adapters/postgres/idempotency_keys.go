package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
)

// IdempotencyKeys reads Idempotency-Key claims (app.IdempotencyKeys) in
// idempotency_keys; the commands' transactions make and complete them
// (Executions). Expired claims are pruned opportunistically, at most once a
// minute per process, before a claim.
type IdempotencyKeys struct {
	pool      *pgxpool.Pool
	lastPrune atomic.Int64 // unix nanoseconds
}

func NewIdempotencyKeys(pool *pgxpool.Pool) *IdempotencyKeys { return &IdempotencyKeys{pool: pool} }

const (
	keyPruneEvery = time.Minute
	keyPruneBatch = 1000
)

// claimSQL claims a free key (new, expired or abandoned) and returns a row,
// or returns none when another request holds it. Run inside the deciding
// transaction, the new claim stays invisible until the decision commits
// with it; a claim of the same key meanwhile waits for that commit.
const claimSQL = `INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at)
	VALUES ($1, $2, $3, 'pending', $4)
	ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash, state = 'pending',
		execution_id = NULL, status = NULL, response = NULL, retry_after = 0, created_at = excluded.created_at
	WHERE idempotency_keys.created_at < $5
		OR (idempotency_keys.state = 'pending' AND idempotency_keys.execution_id IS NULL AND idempotency_keys.created_at < $6)
	RETURNING 1`

// queueClaim queues claim (claimSQL, or a statement built on it) with r's
// arguments.
func queueClaim(b *pgx.Batch, claim string, r app.KeyRequest) {
	b.Queue(claim, r.UserID, r.Key, r.Hash, r.Now, r.ExpiredBefore, r.AbandonedBefore)
}

// readClaim reads a queued claim's result: whether the key is the request's.
func readClaim(br pgx.BatchResults) (bool, error) {
	var one int
	err := br.QueryRow().Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// retryClaim runs in the deciding transaction after a claim found the key
// held: it reads the holder's claim, or, when the holder let the key go in
// between (a release or a prune), claims it again. claimed: the key is the
// request's now.
func (k *IdempotencyKeys) retryClaim(ctx context.Context, conn *pgx.Conn, r app.KeyRequest) (c app.KeyClaim, claimed bool, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		c, found, err := k.holder(ctx, conn, r)
		if err != nil || found {
			return c, false, err
		}
		b := &pgx.Batch{}
		queueClaim(b, claimSQL, r)
		if err := readBatch(conn.SendBatch(ctx, b), func(br pgx.BatchResults) (err error) {
			claimed, err = readClaim(br)
			return err
		}); err != nil || claimed {
			return app.KeyClaim{}, claimed, err
		}
	}
	// Claimed and released over and over: someone is busy with it.
	return app.KeyClaim{State: app.KeyInFlight, SameRequest: true, ClaimedAt: r.Now}, false, nil
}

// Lookup implements app.IdempotencyKeys.
func (k *IdempotencyKeys) Lookup(ctx context.Context, r app.KeyRequest) (app.KeyClaim, bool, error) {
	return k.holder(ctx, k.pool, r)
}

// holder reads the claim that holds r.Key; found is false when it is gone.
func (k *IdempotencyKeys) holder(ctx context.Context, q eventstore.Querier, r app.KeyRequest) (app.KeyClaim, bool, error) {
	var (
		c     app.KeyClaim
		hash  []byte
		state string
		exec  *string
		stat  *int
	)
	err := q.QueryRow(ctx, `SELECT request_hash, state, execution_id::text, status, response::text, retry_after, created_at
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

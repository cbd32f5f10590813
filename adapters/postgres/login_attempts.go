package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// Advisory lock namespaces (the first key of pg_advisory_xact_lock(int, int)):
// one per throttle key kind, taken in this order, so two attempts never
// wait on each other in a cycle.
const (
	lockEmail = 720_411_801
	lockIP    = 720_411_802
)

// pruneEvery is how often one process deletes the attempts that left every
// window (those of keys nobody tries again; Begin prunes its own keys).
const pruneEvery = time.Minute

// LoginAttempts implements app.LoginAttempts on the login_attempts table,
// which every replica shares.
type LoginAttempts struct {
	store      *eventstore.Store
	pool       *pgxpool.Pool
	lastPruned atomic.Int64 // unix nanoseconds
}

func NewLoginAttempts(store *eventstore.Store) *LoginAttempts {
	return &LoginAttempts{store: store, pool: store.Pool()}
}

// Begin implements app.LoginAttempts. Counting and registering happen under
// transaction-scoped advisory locks on the address and the IP, so parallel
// attempts see each other and no more than the limit get through.
func (a *LoginAttempts) Begin(ctx context.Context, email, clientIP string, now time.Time, policy domain.ThrottlePolicy) (app.Attempt, error) {
	cutoff := now.Add(-policy.Window)
	if err := a.prune(ctx, now, cutoff); err != nil {
		return app.Attempt{}, err
	}
	at := app.Attempt{Email: email, ClientIP: clientIP}
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2)), pg_advisory_xact_lock($3, hashtext($4))`,
			lockEmail, email, lockIP, clientIP); err != nil {
			return fmt.Errorf("lock attempts: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM login_attempts WHERE (email = $1 OR client_ip = $2) AND attempted_at < $3`,
			email, clientIP, cutoff); err != nil {
			return fmt.Errorf("prune attempts: %w", err)
		}
		account, err := recent(ctx, tx, "email", email, cutoff)
		if err != nil {
			return err
		}
		ip, err := recent(ctx, tx, "client_ip", clientIP, cutoff)
		if err != nil {
			return err
		}
		if at.RetryAfter = policy.RetryAfter(now, account, ip); at.RetryAfter > 0 {
			return nil
		}
		return tx.QueryRow(ctx, `INSERT INTO login_attempts (email, client_ip, attempted_at, outcome)
			VALUES ($1, $2, $3, 'pending') RETURNING id`, email, clientIP, now).Scan(&at.ID)
	})
	if err != nil {
		return app.Attempt{}, fmt.Errorf("begin login attempt: %w", err)
	}
	return at, nil
}

// recent reads one key's attempts in the window; column is a constant.
func recent(ctx context.Context, tx pgx.Tx, column, key string, cutoff time.Time) (domain.RecentAttempts, error) {
	var r domain.RecentAttempts
	rows, err := tx.Query(ctx, `SELECT attempted_at, outcome = 'pending' FROM login_attempts
		WHERE `+column+` = $1 AND attempted_at >= $2 ORDER BY attempted_at`, key, cutoff)
	if err != nil {
		return r, fmt.Errorf("count attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var at time.Time
		var pending bool
		if err := rows.Scan(&at, &pending); err != nil {
			return r, err
		}
		if pending {
			r.Pending++
		} else {
			r.Failures = append(r.Failures, at)
		}
	}
	return r, rows.Err()
}

func (a *LoginAttempts) prune(ctx context.Context, now, cutoff time.Time) error {
	last := a.lastPruned.Load()
	if now.UnixNano()-last < int64(pruneEvery) || !a.lastPruned.CompareAndSwap(last, now.UnixNano()) {
		return nil
	}
	if _, err := a.pool.Exec(ctx, `DELETE FROM login_attempts WHERE attempted_at < $1`, cutoff); err != nil {
		return fmt.Errorf("prune attempts: %w", err)
	}
	return nil
}

// Finish implements app.LoginAttempts.
func (a *LoginAttempts) Finish(ctx context.Context, at app.Attempt, r app.AttemptResult) error {
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var err error
		switch r.Outcome {
		case app.AttemptFailed:
			_, err = tx.Exec(ctx, `UPDATE login_attempts SET outcome = 'failure' WHERE id = $1`, at.ID)
		case app.AttemptUncounted:
			_, err = tx.Exec(ctx, `DELETE FROM login_attempts WHERE id = $1`, at.ID)
		case app.AttemptSucceeded:
			_, err = tx.Exec(ctx, `DELETE FROM login_attempts
				WHERE id = $1 OR (email = $2 AND client_ip = $3 AND outcome = 'failure')`, at.ID, at.Email, at.ClientIP)
		}
		if err != nil {
			return err
		}
		if r.Event == nil {
			return nil
		}
		return appendEvents(ctx, a.store, tx, r.Stream, eventstore.Any, *r.Event)
	})
	if err != nil {
		return fmt.Errorf("finish login attempt: %w", err)
	}
	return nil
}

package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
	lockAccount = 720_411_801
	lockIP      = 720_411_802
)

// pruneEvery is how often one process deletes the failures that left every
// window (those of keys nobody tries again; Begin prunes its own keys).
// Pending attempts are never pruned: they end by Finish or SettleStale, with
// their event.
const pruneEvery = time.Minute

// settleBatch bounds the attempts one SettleStale transaction settles.
const settleBatch = 500

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
// transaction-scoped advisory locks on the account key and the IP, so
// parallel attempts see each other and no more than the limit get through.
func (a *LoginAttempts) Begin(ctx context.Context, account, clientIP string, now time.Time, policy domain.ThrottlePolicy) (app.Attempt, error) {
	cutoff := now.Add(-policy.Window)
	if err := a.prune(ctx, now, cutoff); err != nil {
		return app.Attempt{}, err
	}
	at := app.Attempt{Account: account, ClientIP: clientIP}
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2)), pg_advisory_xact_lock($3, hashtext($4))`,
			lockAccount, account, lockIP, clientIP); err != nil {
			return fmt.Errorf("lock attempts: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM login_attempts
			WHERE (account_key = $1 OR client_ip = $2) AND attempted_at < $3 AND outcome = 'failure'`,
			account, clientIP, cutoff); err != nil {
			return fmt.Errorf("prune attempts: %w", err)
		}
		acct, err := recent(ctx, tx, "account_key", account, cutoff)
		if err != nil {
			return err
		}
		ip, err := recent(ctx, tx, "client_ip", clientIP, cutoff)
		if err != nil {
			return err
		}
		if at.RetryAfter = policy.RetryAfter(now, acct, ip); at.RetryAfter > 0 {
			return nil
		}
		return tx.QueryRow(ctx, `INSERT INTO login_attempts (account_key, client_ip, attempted_at, outcome)
			VALUES ($1, $2, $3, 'pending') RETURNING id`, account, clientIP, now).Scan(&at.ID)
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
			r.Pending = append(r.Pending, at)
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
	if _, err := a.pool.Exec(ctx, `DELETE FROM login_attempts WHERE attempted_at < $1 AND outcome = 'failure'`, cutoff); err != nil {
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
				WHERE id = $1 OR (account_key = $2 AND client_ip = $3 AND outcome = 'failure')`, at.ID, at.Account, at.ClientIP)
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

// SettleStale implements app.LoginAttempts. Rows are claimed with FOR UPDATE
// SKIP LOCKED and deleted in the transaction that appends their events, so
// concurrent settlers (replicas starting together) never settle one twice.
func (a *LoginAttempts) SettleStale(ctx context.Context, cutoff time.Time, settle func(app.Attempt) (string, domain.Event)) (int, error) {
	total := 0
	for {
		n := 0
		err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `DELETE FROM login_attempts WHERE id IN (
				SELECT id FROM login_attempts WHERE outcome = 'pending' AND attempted_at < $1
				ORDER BY attempted_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
				RETURNING id, account_key, client_ip`, cutoff, settleBatch)
			if err != nil {
				return err
			}
			stale, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Attempt, error) {
				var at app.Attempt
				return at, r.Scan(&at.ID, &at.Account, &at.ClientIP)
			})
			if err != nil {
				return err
			}
			type settled struct {
				at     app.Attempt
				stream string
				ev     domain.Event
			}
			out := make([]settled, len(stale))
			for i, at := range stale {
				out[i].at = at
				out[i].stream, out[i].ev = settle(at)
			}
			// Appending with Any locks each stream until commit: in stream
			// order, so that concurrent settlers never wait in a cycle.
			slices.SortStableFunc(out, func(x, y settled) int { return strings.Compare(x.stream, y.stream) })
			caller := app.CallerFrom(ctx)
			for _, s := range out {
				caller.ClientIP = s.at.ClientIP
				if err := appendEvents(app.WithCaller(ctx, caller), a.store, tx, s.stream, eventstore.Any, s.ev); err != nil {
					return err
				}
			}
			n = len(stale)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("settle stale login attempts: %w", err)
		}
		total += n
		if n < settleBatch {
			return total, nil
		}
	}
}

package postgres

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// executionStates remembers, per user, UTC day and exchange, the state the
// last decision of this process left behind: the day's usage, the user's
// risk profile, whether a secret is stored, the kill switch. A decision
// can then be made on it and written in one round trip
// (decideOnRemembered) whose first statement checks, atomically with the
// writes, that the state is still what was remembered. Another process's
// decision, a profile or secret change, the kill switch moved, a new day:
// the check fails, the round trip writes nothing, and
// the decision is made again the locking way. So the remembered state is
// never trusted, only tried: it is versioned data (the usage row's values
// are its version), and a stale copy costs a round trip, never a wrong
// decision.
type executionStates struct {
	mu     sync.Mutex
	states map[stateKey]app.ExecutionState
}

type stateKey struct {
	userID, day string
	exchange    domain.Exchange
}

func stateKeyOf(req app.DecideRequest) stateKey { return stateKey{req.UserID, req.Day, req.Exchange} }

// maxStates bounds the remembered states (~200 bytes each); when full, they
// are all dropped.
const maxStates = 10000

func (s *executionStates) get(req app.DecideRequest) (app.ExecutionState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[stateKeyOf(req)]
	return st, ok
}

func (s *executionStates) put(req app.DecideRequest, st app.ExecutionState) {
	st.Secret = nil // never kept: test orders read it in their transaction
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil || len(s.states) >= maxStates {
		s.states = map[stateKey]app.ExecutionState{}
	}
	s.states[stateKeyOf(req)] = st
}

func (s *executionStates) forget(req app.DecideRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, stateKeyOf(req))
}

// claimOrFailSQL is the key's claim that fails (division by zero) when
// another request holds the key, so that the round trip writes nothing.
const claimOrFailSQL = `WITH c AS (` + claimSQL + `) SELECT 1 / count(*) FROM c`

// checkedUsageSQL writes the usage a decision leaves ($3, $4) only when the
// state it was made on is still the current one: the usage row holds $5,
// $6, the user's profile is $7, a secret for exchange $8 is stored or not
// as $9 says and the kill switch is engaged or not as $10 says. Otherwise
// it fails (division by zero). The UPDATE locks
// the row, and a concurrent decision that changed it meanwhile makes the
// WHERE false when re-checked against the new row (READ COMMITTED).
const checkedUsageSQL = `WITH u AS (
		UPDATE execution_daily_usage d SET orders = $3, notional = $4::numeric
		WHERE d.user_id = $1 AND d.day = $2::date AND d.orders = $5 AND d.notional = $6::numeric
			AND (SELECT risk_profile FROM users WHERE id = $1) = $7
			AND EXISTS (SELECT 1 FROM exchange_secrets s WHERE s.user_id = $1 AND s.exchange = $8) = $9
			AND (SELECT engaged FROM risk_kill_switch) = $10
		RETURNING 1)
	SELECT 1 / count(*) FROM u`

// rememberedWrite is a decision made on a remembered state and queued on
// a batch: read takes its results there; st is the state it leaves.
type rememberedWrite struct {
	req  app.DecideRequest
	st   app.ExecutionState
	read func(pgx.BatchResults) error
}

// queueRemembered decides on the remembered state st and queues the
// decision's writes on b: the key's claim, the checked usage write, the
// append, the key's update. ok is false when the decision could not be
// made on st (the caller decides the locking way); on an error nothing is
// left queued.
func (r *Executions) queueRemembered(ctx context.Context, b *pgx.Batch, req app.DecideRequest, st app.ExecutionState, decide func(app.ExecutionState) (app.Decided, error)) (w rememberedWrite, ok bool, err error) {
	d, err := decide(st)
	if err != nil {
		return w, false, nil
	}
	start := b.Len()
	if req.Key != nil {
		queueClaim(b, claimOrFailSQL, *req.Key)
	}
	b.Queue(checkedUsageSQL, req.UserID, req.Day, d.Usage.Orders, d.Usage.Notional.String(),
		st.Usage.Orders, st.Usage.Notional.String(), string(st.Profile), string(req.Exchange), st.SecretConfigured, st.Halted)
	checks := b.Len() - start
	appended, err := queueAppend(ctx, r.store, b, req.Stream, eventstore.NoStream, d.Events...)
	if err != nil {
		b.QueuedQueries = b.QueuedQueries[:start]
		return w, true, err
	}
	queueKeyUpdate(b, d.Key)
	after := b.Len() - start - checks - 1
	st.Usage = d.Usage
	return rememberedWrite{req: req, st: st, read: func(br pgx.BatchResults) error {
		return readWrites(br, checks, appended, after)
	}}, true, nil
}

// isStale tells whether a remembered decision's writes failed their check
// (checkedUsageSQL, claimOrFailSQL): the state changed, or the key is held.
func isStale(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22012"
}

// decideOnRemembered decides on the remembered state st and writes the
// decision in one batch, which PostgreSQL runs as one implicit
// transaction. done is false when the state turned out stale (or the key
// held, or the decision could not be made on it): nothing was written and
// the caller decides the locking way.
func (r *Executions) decideOnRemembered(ctx context.Context, req app.DecideRequest, st app.ExecutionState, decide func(app.ExecutionState) (app.Decided, error)) (done bool, err error) {
	b := &pgx.Batch{}
	w, ok, err := r.queueRemembered(ctx, b, req, st, decide)
	if !ok || err != nil {
		return ok, err
	}
	return r.settle(w, readBatch(r.pool.SendBatch(ctx, b), w.read))
}

// settle takes the outcome err of a remembered decision's write w, sent
// alone or as a whole group, and reports it as decideOnRemembered does:
// written, the state w leaves is remembered; stale, the state is
// forgotten and the caller decides the locking way.
func (r *Executions) settle(w rememberedWrite, err error) (done bool, _ error) {
	switch {
	case isStale(err):
		r.states.forget(w.req)
		return false, nil
	case err != nil:
		return true, err
	}
	r.states.put(w.req, w.st)
	return true, nil
}

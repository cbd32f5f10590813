package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/domain"
)

// This file holds what the execution handlers (prepare and the two test
// orders) share: the storage port, the risk decision and the run of one
// command under its Idempotency-Key.

// ExecutionState is what deciding needs to know about the user, read in
// the deciding transaction.
type ExecutionState struct {
	Profile domain.RiskProfile
	// Usage is what the user had accepted so far on the day; the row stays
	// locked until the transaction ends.
	Usage            domain.DailyUsage
	SecretConfigured bool
}

// Decided is what a decision writes, atomically.
type Decided struct {
	Events []domain.Event
	// Usage is the day's usage after the decision, written back when it
	// changed.
	Usage domain.DailyUsage
	// Key is written to the request's Idempotency-Key, if it has one.
	Key *KeyUpdate
}

// Executions stores the execution commands' events with the state they
// need to be exact under concurrency.
type Executions interface {
	// Decide runs decide in one transaction that holds the user's usage
	// row for day locked (created empty when missing), reads the user's
	// risk profile and whether they stored a secret for exchange, and then
	// appends the returned events to stream, writes the usage and applies
	// the key update. So two concurrent decisions against the last daily
	// slot cannot both pass. KindNotFound when the user no longer exists.
	Decide(ctx context.Context, userID string, exchange domain.Exchange, day, stream string, decide func(ExecutionState) (Decided, error)) error
	// Record appends events to stream after its decision (the stream's one
	// event so far) and applies key, in one transaction.
	Record(ctx context.Context, stream string, events []domain.Event, key *KeyUpdate) error
}

// executionTimeout bounds one command, which runs on a context detached
// from the request: a client hanging up must not leave a sent order
// unrecorded. The adapters bound each exchange call more tightly.
const executionTimeout = 45 * time.Second

// executionCore is the machinery the execution handlers share.
type executionCore struct {
	store   Executions
	keys    IdempotencyKeys
	markets map[domain.Exchange]Market
	clock   Clock
}

// run is one execution command under way.
type run struct {
	*executionCore
	ctx    context.Context
	cancel context.CancelFunc
	caller Caller
	order  domain.OrderRequest
	now    time.Time
	id     string // execution id
	stream string
	key    string // "" without an Idempotency-Key
	// recorded: an event was appended under the key, which is then never
	// released by finish.
	recorded bool
}

// start validates the caller and the key, detaches the command from the
// request, and claims the key. A replay is returned as a Response.
func (x *executionCore) start(ctx context.Context, command string, order domain.OrderRequest, key string, keySent bool) (*run, *Response, error) {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return nil, nil, errUnauthenticated
	}
	if err := checkIdempotencyKey(key, keySent); err != nil {
		return nil, nil, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	r := &run{executionCore: x, caller: c, order: order, now: x.clock.Now(), id: id, stream: domain.ExecutionStream(id), key: key}
	r.ctx, r.cancel = context.WithTimeout(context.WithoutCancel(ctx), executionTimeout)
	if key == "" {
		return r, nil, nil
	}
	claim, err := x.keys.Claim(r.ctx, KeyRequest{UserID: c.UserID, Key: key, Hash: requestHash(command, order), Now: r.now,
		ExpiredBefore: r.now.Add(-idempotencyTTL), AbandonedBefore: r.now.Add(-idempotencyLease)})
	switch {
	case err != nil:
		r.cancel()
		return nil, nil, err
	case claim.State == KeyDone && claim.SameRequest:
		r.cancel()
		return nil, &claim.Response, nil
	case claim.State != KeyClaimed:
		r.cancel()
		return nil, nil, claimError(claim, r.now)
	}
	return r, nil, nil
}

// finish ends the run: a key under which nothing was recorded is released
// so that a corrected retry works (on a fresh context: the run's may be
// spent). A release that fails leaves the claim to expire as abandoned.
func (r *run) finish() {
	defer r.cancel()
	if r.key == "" || r.recorded {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 5*time.Second)
	defer cancel()
	_ = r.keys.Release(ctx, r.caller.UserID, r.key)
}

// keyUpdate is the update of the run's key (nil without one).
func (r *run) keyUpdate(done *Response) *KeyUpdate {
	if r.key == "" {
		return nil
	}
	return &KeyUpdate{UserID: r.caller.UserID, Key: r.key, ExecutionID: r.id, Done: done}
}

// quote is the order's reference price and exchange filters.
func (r *run) quote() (domain.Price, domain.SymbolFilters, error) {
	m := r.markets[r.order.Exchange()]
	ref, err := m.ReferencePrice(r.ctx, r.order.Symbol())
	if err != nil {
		return domain.Price{}, domain.SymbolFilters{}, err
	}
	filters, err := m.SymbolFilters(r.ctx, r.order.Symbol())
	return ref, filters, err
}

// decision is a prepare's outcome: the order decided under the user's
// profile and shadow-evaluated under the other.
type decision struct {
	domain.Decision
	Shadow           domain.Decision
	Reference        domain.Price
	SecretConfigured bool
}

// decide decides the order and appends execution.prepare, with the day's
// usage and the key's update, in one transaction. final returns the
// response to store when the decision is the command's last word (nil:
// the command goes on).
func (r *run) decide(final func(decision) *Response) (decision, error) {
	ref, filters, err := r.quote()
	if err != nil {
		return decision{}, err
	}
	var d decision
	err = r.store.Decide(r.ctx, r.caller.UserID, r.order.Exchange(), domain.UTCDay(r.now), r.stream, func(s ExecutionState) (Decided, error) {
		d = decision{
			Decision:         domain.Evaluate(domain.RulesFor(s.Profile), r.order, ref, filters, s.Usage),
			Shadow:           domain.Evaluate(domain.RulesFor(domain.ShadowOf(s.Profile)), r.order, ref, filters, s.Usage),
			Reference:        ref,
			SecretConfigured: s.SecretConfigured,
		}
		ev := domain.NewExecutionPrepared(r.id, r.caller.UserID, r.order, ref, d.Decision, d.Shadow, s.SecretConfigured, r.now)
		return Decided{Events: []domain.Event{ev}, Usage: s.Usage.Apply(d.Decision), Key: r.keyUpdate(final(d))}, nil
	})
	if err != nil {
		return decision{}, err
	}
	r.recorded = true
	return d, nil
}

// RiskRejected is the error of a test order its risk profile rejected:
// nothing was sent. It carries the decision for the response.
type RiskRejected struct {
	ExecutionID string
	Decision    domain.Decision
}

func (e *RiskRejected) Error() string { return e.classified().Error() }

func (e *RiskRejected) Unwrap() error { return e.classified() }

func (e *RiskRejected) classified() *domain.Error {
	return domain.Errorf(domain.KindUnprocessable, "risk_rejected", "the %s risk profile rejected the order (%s); nothing was sent",
		e.Decision.Profile, strings.Join(e.Decision.FailedCodes(), ", "))
}

// secretMissing answers a test order without stored credentials.
func secretMissing(ex domain.Exchange) error {
	return domain.Errorf(domain.KindConflict, "secret_missing",
		"no %s credentials are stored; PUT /users/exchange-secrets/%s first (nothing was sent)", ex, ex)
}

// OrderInput is an order as a caller sends it. Qty and Price are the texts
// of JSON numbers or strings (domain.ParseQuantity); Price is "" when absent.
type OrderInput struct {
	Symbol, Side, Qty, Price, OrderType string
	IdempotencyKey                      string
	// IdempotencyKeySent distinguishes an empty key (invalid) from none.
	IdempotencyKeySent bool
}

// begin validates the order and starts its run. A non-nil Reply is the
// answer already: bad input, a key another request holds, or a replay.
func begin[T any](ctx context.Context, x *executionCore, command string, exchange string, in OrderInput, render Render[T]) (*run, *Reply) {
	var zero T
	order, err := domain.NewOrderRequest(exchange, in.Symbol, in.Side, in.Qty, in.Price, in.OrderType)
	if err != nil {
		return nil, &Reply{Response: render(zero, err)}
	}
	r, replay, err := x.start(ctx, command, order, in.IdempotencyKey, in.IdempotencyKeySent)
	switch {
	case err != nil:
		return nil, &Reply{Response: render(zero, err)}
	case replay != nil:
		return nil, &Reply{Response: *replay, Replayed: true}
	}
	return r, nil
}

// TestOrderResult is a test order the exchange validated.
type TestOrderResult struct {
	ExecutionID string
	Exchange    domain.Exchange
	Mode        domain.TestOrderMode
	// Answer is the exchange's response (Binance) or preview (IBKR).
	Answer []byte
}

// sendTestOrder runs a test order after its credentials are known: decide
// (a rejection is stored as the final answer), send, and record the
// outcome with the final response in one transaction. A failure to record
// after sending leaves the key held (idempotency_unfinished) rather than
// free to send again.
func (r *run) sendTestOrder(mode domain.TestOrderMode, render Render[TestOrderResult], send func() ([]byte, error)) Response {
	var rejected Response
	d, err := r.decide(func(d decision) *Response {
		if d.Accepted() {
			return nil
		}
		rejected = render(TestOrderResult{}, &RiskRejected{ExecutionID: r.id, Decision: d.Decision})
		return &rejected
	})
	if err != nil {
		return render(TestOrderResult{}, err)
	}
	if !d.Accepted() {
		return rejected
	}
	answer, sendErr := send()
	var ev domain.Event
	if sendErr == nil {
		ev = domain.NewTestOrderSucceeded(r.id, r.caller.UserID, r.order, mode, d.Profile, r.now)
	} else {
		ev = testOrderFailed(r, mode, d.Profile, sendErr)
	}
	resp := render(TestOrderResult{ExecutionID: r.id, Exchange: r.order.Exchange(), Mode: mode, Answer: answer}, sendErr)
	key := r.keyUpdate(&resp)
	if key != nil && notTakenIn(sendErr) {
		key.Done, key.Release = nil, true
	}
	if err := r.store.Record(r.ctx, r.stream, []domain.Event{ev}, key); err != nil {
		return render(TestOrderResult{}, fmt.Errorf("record the test order's outcome (execution %s): %w", r.id, err))
	}
	return resp
}

// testOrderFailed is the error event of a test order: the exchange's code
// and message, or for a refusal before sending our own code and message.
func testOrderFailed(r *run, mode domain.TestOrderMode, profile domain.RiskProfile, err error) domain.Event {
	if xe, ok := asExchangeError(err); ok {
		return domain.NewTestOrderFailed(r.id, r.caller.UserID, r.order, mode, profile, xe.Outcome, xe.Code.String(), xe.Message, r.now)
	}
	outcome, code, msg := domain.TestOrderRejected, "", "not sent"
	if e, ok := asDomainError(err); ok && domain.ErrorKind(err) != domain.KindInternal {
		code, msg = e.Code, e.Message
	} else {
		// An unclassified failure: we cannot tell whether it left.
		outcome = domain.TestOrderUnknown
	}
	return domain.NewTestOrderFailed(r.id, r.caller.UserID, r.order, mode, profile, outcome, code, msg, r.now)
}

// notTakenIn reports whether the exchange certainly did not take the order
// in: it rate limited it, or we refused before sending (any classified
// error that is not the exchange's answer).
func notTakenIn(err error) bool {
	if err == nil {
		return false
	}
	if xe, ok := asExchangeError(err); ok {
		return xe.Retryable
	}
	return domain.ErrorKind(err) != domain.KindInternal
}

func asExchangeError(err error) (*domain.ExchangeError, bool) {
	var xe *domain.ExchangeError
	ok := errors.As(err, &xe)
	return xe, ok
}

func asDomainError(err error) (*domain.Error, bool) {
	var e *domain.Error
	ok := errors.As(err, &e)
	return e, ok
}

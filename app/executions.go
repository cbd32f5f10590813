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
	// Halted: the risk kill switch is engaged, every order is rejected.
	Halted bool
	// Secret is the stored secret, sealed, when DecideRequest.Secret asked
	// for it and there is one.
	Secret *StoredExchangeSecret
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

// DecideRequest names what a decision runs against.
type DecideRequest struct {
	UserID   string
	Exchange domain.Exchange
	// Day is the UTC day whose usage the decision counts against.
	Day    string
	Stream string
	// Key is the request's Idempotency-Key claim (nil without one).
	Key *KeyRequest
	// Secret: read the user's stored secret for the exchange too (a test
	// order signs with it), saving a round trip of its own.
	Secret bool
}

// Executions stores the execution commands' events with the state they
// need to be exact under concurrency.
type Executions interface {
	// Decide runs decide in one transaction that first claims req.Key (when
	// set), holds the user's usage row for the day locked (created empty
	// when missing), reads the user's risk profile and whether they stored
	// a secret for the exchange, and then appends the returned events to
	// req.Stream, writes the usage and applies the key update. So two
	// concurrent decisions against the last daily slot cannot both pass,
	// and a key is never seen claimed without its decision: a concurrent
	// request with the same key waits for the transaction and then finds
	// the key held. When another request holds the key, decide is not
	// called on the stored state, nothing is written and the holder's claim
	// is returned (State != KeyClaimed). KindNotFound when the user no
	// longer exists. decide may run more than once — first on a state the
	// implementation remembers, then, when that proves stale, on the stored
	// one — and only the result of a run on the current state is written,
	// so it must have no effect beyond its result.
	Decide(ctx context.Context, req DecideRequest, decide func(ExecutionState) (Decided, error)) (KeyClaim, error)
	// Record appends events to stream after its decision (the stream's one
	// event so far) and applies key, in one transaction (one round trip).
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
	// key is the request's claim of its Idempotency-Key (nil without one),
	// made in the deciding transaction.
	key *KeyRequest
}

// start validates the caller and the key and detaches the command from the
// request. The key is claimed later, by the deciding transaction: a claim
// is never stored without its decision, so nothing is left to release when
// a command stops before deciding, and a prepare commits once.
func (x *executionCore) start(ctx context.Context, command string, order domain.OrderRequest, key string, keySent bool) (*run, error) {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return nil, errUnauthenticated
	}
	if err := checkIdempotencyKey(key, keySent); err != nil {
		return nil, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	r := &run{executionCore: x, caller: c, order: order, now: x.clock.Now(), id: id, stream: domain.ExecutionStream(id)}
	if keySent {
		r.key = &KeyRequest{UserID: c.UserID, Key: key, Hash: requestHash(command, order), Now: r.now,
			ExpiredBefore: r.now.Add(-idempotencyTTL), AbandonedBefore: r.now.Add(-idempotencyLease)}
	}
	r.ctx, r.cancel = context.WithTimeout(context.WithoutCancel(ctx), executionTimeout)
	return r, nil
}

// finish ends the run (its detached context).
func (r *run) finish() { r.cancel() }

// keyHeld is the error of a run whose Idempotency-Key another request
// holds: answered with that request's stored response, or claimError.
type keyHeld struct{ claim KeyClaim }

func (e *keyHeld) Error() string { return "idempotency key held by another request" }

// fail answers a run that stopped before deciding, or whose decision was
// not stored. A request whose key turns out to be held by an earlier one
// gets that one's answer, as a repeat that reached the decision does: a
// repeat of a finished request must get the first response even when,
// meanwhile, the market data or its credentials are gone.
func fail[T any](r *run, err error, render Render[T]) Reply {
	var held *keyHeld
	if !errors.As(err, &held) && r.key != nil {
		if c, found, lerr := r.keys.Lookup(r.ctx, *r.key); lerr == nil && found {
			held = &keyHeld{claim: c}
		}
	}
	if held != nil {
		if held.claim.State == KeyDone && held.claim.SameRequest {
			return Reply{Response: held.claim.Response, Replayed: true}
		}
		err = claimError(held.claim, r.now)
	}
	var zero T
	return Reply{Response: render(zero, err)}
}

// keyUpdate is the update of the run's key (nil without one).
func (r *run) keyUpdate(done *Response) *KeyUpdate {
	if r.key == nil {
		return nil
	}
	return &KeyUpdate{UserID: r.caller.UserID, Key: r.key.Key, ExecutionID: r.id, Done: done}
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
// usage and the key's update, in one transaction. open, when not nil, is
// given the state first (with the stored secret) and its error abandons the
// decision: nothing is written. final returns the response to store when
// the decision is the command's last word (nil: the command goes on).
func (r *run) decide(open func(ExecutionState) error, final func(decision) *Response) (decision, error) {
	ref, filters, err := r.quote()
	if err != nil {
		return decision{}, err
	}
	var d decision
	req := DecideRequest{UserID: r.caller.UserID, Exchange: r.order.Exchange(), Day: domain.UTCDay(r.now), Stream: r.stream, Key: r.key, Secret: open != nil}
	claim, err := r.store.Decide(r.ctx, req, func(s ExecutionState) (Decided, error) {
		if open != nil {
			if err := open(s); err != nil {
				return Decided{}, err
			}
		}
		d = decision{
			Decision:         domain.Evaluate(domain.RulesFor(s.Profile).Halt(s.Halted), r.order, ref, filters, s.Usage),
			Shadow:           domain.Evaluate(domain.RulesFor(domain.ShadowOf(s.Profile)).Halt(s.Halted), r.order, ref, filters, s.Usage),
			Reference:        ref,
			SecretConfigured: s.SecretConfigured,
		}
		ev := domain.NewExecutionPrepared(r.id, r.caller.UserID, r.order, ref, d.Decision, d.Shadow, s.SecretConfigured, r.now)
		return Decided{Events: []domain.Event{ev}, Usage: s.Usage.Apply(d.Decision), Key: r.keyUpdate(final(d))}, nil
	})
	switch {
	case err != nil:
		return decision{}, err
	case claim.State != KeyClaimed:
		return decision{}, &keyHeld{claim: claim}
	}
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
// answer already: bad input.
func begin[T any](ctx context.Context, x *executionCore, command string, exchange string, in OrderInput, render Render[T]) (*run, *Reply) {
	var zero T
	order, err := domain.NewOrderRequest(exchange, in.Symbol, in.Side, in.Qty, in.Price, in.OrderType)
	if err != nil {
		return nil, &Reply{Response: render(zero, err)}
	}
	r, err := x.start(ctx, command, order, in.IdempotencyKey, in.IdempotencyKeySent)
	if err != nil {
		return nil, &Reply{Response: render(zero, err)}
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

// sendTestOrder runs a test order: decide, with open taking the stored
// credentials from the deciding transaction (its error, e.g. no secret,
// abandons the decision: nothing appended, nothing sent; a rejection is
// stored as the final answer), send, and record the outcome with the final
// response in one transaction. A failure to record after sending leaves
// the key held (idempotency_unfinished) rather than free to send again.
func (r *run) sendTestOrder(mode domain.TestOrderMode, render Render[TestOrderResult], open func(ExecutionState) error, send func() ([]byte, error)) Reply {
	var rejected Response
	d, err := r.decide(open, func(d decision) *Response {
		if d.Accepted() {
			return nil
		}
		rejected = render(TestOrderResult{}, &RiskRejected{ExecutionID: r.id, Decision: d.Decision})
		return &rejected
	})
	if err != nil {
		return fail(r, err, render)
	}
	if !d.Accepted() {
		return Reply{Response: rejected}
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
		return Reply{Response: render(TestOrderResult{}, fmt.Errorf("record the test order's outcome (execution %s): %w", r.id, err))}
	}
	return Reply{Response: resp}
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

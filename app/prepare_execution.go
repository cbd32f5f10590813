package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// PrepareExecution is a dry run of an order on an exchange.
type PrepareExecution struct {
	Exchange string
	OrderInput
}

// PreparedExecution is a prepare's answer.
type PreparedExecution struct {
	ExecutionID string
	Order       domain.OrderRequest
	Reference   domain.Price
	Decision    domain.Decision
	Shadow      domain.Decision
	// SecretConfigured: the user has credentials stored for the exchange.
	SecretConfigured bool
}

// PrepareExecutionHandler decides an order under the caller's risk profile,
// shadow-evaluates it under the other, and appends execution.prepare.
// Nothing is sent to any exchange; the reference price and filters come
// from the exchange's (cached) market data.
type PrepareExecutionHandler struct{ x *executionCore }

func NewPrepareExecutionHandler(store Executions, keys IdempotencyKeys, binance, ibkr Market, clock Clock) *PrepareExecutionHandler {
	return &PrepareExecutionHandler{x: &executionCore{store: store, keys: keys, clock: clock,
		markets: map[domain.Exchange]Market{domain.ExchangeBinance: binance, domain.ExchangeIBKR: ibkr}}}
}

// Handle answers with the decision, accepted or rejected alike, and stores
// the answer for repeats in the transaction that appends the event.
func (h *PrepareExecutionHandler) Handle(ctx context.Context, cmd PrepareExecution, render Render[PreparedExecution]) Reply {
	r, reply := begin(ctx, h.x, "execution.prepare", cmd.Exchange, cmd.OrderInput, render)
	if reply != nil {
		return *reply
	}
	defer r.finish()
	var resp Response
	if _, err := r.decide(nil, func(d decision) *Response {
		resp = render(PreparedExecution{ExecutionID: r.id, Order: r.order, Reference: d.Reference,
			Decision: d.Decision, Shadow: d.Shadow, SecretConfigured: d.SecretConfigured}, nil)
		return &resp
	}); err != nil {
		return fail(r, err, render)
	}
	return Reply{Response: resp}
}

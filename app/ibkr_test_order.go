package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// SimulatedIBKRAccount is the paper account a simulated what-if uses when
// the caller stored no IBKR credentials: the simulator consults no account,
// and the release checklist must pass without one.
const SimulatedIBKRAccount = "DUSIM0000"

// IBKRTestOrderHandler previews an order with IBKR's what-if (a Client
// Portal gateway, or the simulator) after the same risk decision as
// prepare: a rejected order is never sent. The account id comes from the
// caller's stored IBKR credentials, decrypted for this request only.
type IBKRTestOrderHandler struct {
	x           *executionCore
	ibkr        IBKR
	credentials *OpenExchangeCredentialsHandler
}

func NewIBKRTestOrderHandler(store Executions, keys IdempotencyKeys, ibkr IBKR, credentials *OpenExchangeCredentialsHandler, clock Clock) *IBKRTestOrderHandler {
	return &IBKRTestOrderHandler{ibkr: ibkr, credentials: credentials, x: &executionCore{store: store, keys: keys, clock: clock,
		markets: map[domain.Exchange]Market{domain.ExchangeIBKR: ibkr}}}
}

func (h *IBKRTestOrderHandler) Handle(ctx context.Context, in OrderInput, render Render[TestOrderResult]) Reply {
	r, reply := begin(ctx, h.x, "execution.ibkr.test_order", string(domain.ExchangeIBKR), in, render)
	if reply != nil {
		return *reply
	}
	defer r.finish()
	mode := h.ibkr.Mode()
	var account domain.Secret
	return r.sendTestOrder(mode, render, func(s ExecutionState) error {
		switch {
		case s.Secret == nil && mode == domain.TestOrderModeSimulated:
			account = domain.NewSecret(SimulatedIBKRAccount)
		case s.Secret == nil:
			return secretMissing(domain.ExchangeIBKR)
		default:
			creds, err := h.credentials.Open(*s.Secret)
			if err != nil {
				return err
			}
			account = creds.Field(domain.FieldAccountID)
		}
		return nil
	}, func() ([]byte, error) {
		return h.ibkr.WhatIf(r.ctx, account, r.order)
	})
}

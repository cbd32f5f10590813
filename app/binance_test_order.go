package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// BinanceTestOrderHandler validates an order with Binance's order/test
// (never the matching engine) after the same risk decision as prepare: a
// rejected order is never sent. The caller's stored credentials are
// decrypted for this request only.
type BinanceTestOrderHandler struct {
	x           *executionCore
	binance     Binance
	credentials *OpenExchangeCredentialsHandler
}

func NewBinanceTestOrderHandler(store Executions, keys IdempotencyKeys, binance Binance, credentials *OpenExchangeCredentialsHandler, clock Clock) *BinanceTestOrderHandler {
	return &BinanceTestOrderHandler{binance: binance, credentials: credentials, x: &executionCore{store: store, keys: keys, clock: clock,
		markets: map[domain.Exchange]Market{domain.ExchangeBinance: binance}}}
}

func (h *BinanceTestOrderHandler) Handle(ctx context.Context, in OrderInput, render Render[TestOrderResult]) Reply {
	r, reply := begin(ctx, h.x, "execution.binance.test_order", string(domain.ExchangeBinance), in, render)
	if reply != nil {
		return *reply
	}
	defer r.finish()
	var creds domain.ExchangeCredentials
	return r.sendTestOrder(h.binance.Mode(), render, func(s ExecutionState) (err error) {
		if s.Secret == nil {
			return secretMissing(domain.ExchangeBinance)
		}
		creds, err = h.credentials.Open(*s.Secret)
		return err
	}, func() ([]byte, error) {
		return h.binance.TestOrder(r.ctx, creds, r.order)
	})
}

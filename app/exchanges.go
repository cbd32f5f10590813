package app

import (
	"context"
	"encoding/json"

	"github.com/tradeops/tradeops/domain"
)

// This file holds the exchange ports of the execution handlers, implemented
// by adapters/binance and adapters/ibkr. Every error they return is
// classified: an unknown symbol is KindInvalid "unknown_symbol"; an
// exchange's answer to a test order is a *domain.ExchangeError; a refusal
// to send (an unusable secret, a live account while live is off) is a
// plain *domain.Error, and then nothing was sent.

// Market is what deciding on an order needs from its exchange.
type Market interface {
	// ReferencePrice is the symbol's current price (cached by the adapter).
	ReferencePrice(ctx context.Context, symbol string) (domain.Price, error)
	// SymbolFilters are the exchange's own rules for the symbol; empty for
	// an exchange without any (IBKR).
	SymbolFilters(ctx context.Context, symbol string) (domain.SymbolFilters, error)
}

// Binance validates orders with Binance's order/test endpoint, which never
// reaches the matching engine.
type Binance interface {
	Market
	// Mode is testnet or live (still only order/test).
	Mode() domain.TestOrderMode
	// TestOrder signs with creds (decrypted for this request only) and
	// returns Binance's answer (`{}`, or commission objects).
	TestOrder(ctx context.Context, creds domain.ExchangeCredentials, order domain.OrderRequest) (json.RawMessage, error)
}

// IBKR previews orders with IBKR's what-if, never placing one.
type IBKR interface {
	Market
	// Mode is paper (a Client Portal gateway) or simulated.
	Mode() domain.TestOrderMode
	// WhatIf previews order for the account and returns the preview
	// (amount, equity, initial, maintenance, position, warn, error).
	WhatIf(ctx context.Context, accountID domain.Secret, order domain.OrderRequest) (json.RawMessage, error)
}

package ibkr

import (
	"context"
	"encoding/json"
	"errors"
	"net"

	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/domain"
)

// previewer is what Gateway and Simulator have in common.
type previewer interface {
	Mode() string
	ReferencePrice(ctx context.Context, symbol string) (decimal.Decimal, error)
	WhatIf(ctx context.Context, accountID string, o Order) (Preview, error)
}

// Bridge is a Gateway or the Simulator as the execution feature's IBKR port
// (app.IBKR): domain types in, classified domain errors out.
type Bridge struct{ p previewer }

// NewBridge wraps a *Gateway (mode paper) or a *Simulator (simulated).
func NewBridge(p previewer) *Bridge {
	return &Bridge{p: p}
}

func (b *Bridge) Mode() domain.TestOrderMode { return domain.TestOrderMode(b.p.Mode()) }

// ReferencePrice is the last price (gateway snapshot, or the simulator's).
func (b *Bridge) ReferencePrice(ctx context.Context, symbol string) (domain.Price, error) {
	p, err := b.p.ReferencePrice(ctx, symbol)
	if err != nil {
		return domain.Price{}, marketError(symbol, err)
	}
	price, err := domain.ParsePrice(p.String())
	if err != nil {
		return domain.Price{}, domain.Wrap(err, domain.KindUpstream, "ibkr_unavailable", "IBKR sent an unusable price for "+symbol)
	}
	return price, nil
}

// SymbolFilters: IBKR publishes no exchange filters to check beforehand.
func (b *Bridge) SymbolFilters(context.Context, string) (domain.SymbolFilters, error) {
	return domain.SymbolFilters{}, nil
}

// WhatIf previews order for the account and returns the preview as JSON.
func (b *Bridge) WhatIf(ctx context.Context, accountID domain.Secret, order domain.OrderRequest) (json.RawMessage, error) {
	p, err := b.p.WhatIf(ctx, accountID.Reveal(), Order{
		Symbol:   order.Symbol(),
		Side:     string(order.Side()),
		Type:     string(order.OrderType()),
		Quantity: order.Qty().Decimal(),
		Price:    order.LimitPrice().Decimal(),
	})
	if err != nil {
		return nil, orderError(err)
	}
	return json.Marshal(p)
}

// marketError classifies a failed price look-up: nothing was ordered.
func marketError(symbol string, err error) error {
	e, ok := asError(err)
	switch {
	case !ok:
		return err
	case e.Kind == NotFound || e.Kind == Invalid:
		return domain.Wrap(err, domain.KindInvalid, "unknown_symbol", symbol+" is not an IBKR stock symbol")
	case e.Kind == Refused:
		return domain.Wrap(err, domain.KindUnprocessable, "ibkr_refused", e.Message)
	}
	kind := domain.KindUpstream
	if timedOut(e) {
		kind = domain.KindUpstreamTimeout
	}
	return domain.Wrap(err, kind, "ibkr_unavailable", "IBKR market data is unavailable for "+symbol+": "+e.Message)
}

// orderError classifies a failed what-if. IBKR's API has no error codes:
// exchange_code carries the adapter's reading of the answer (rejected,
// not_authenticated, not_found). Refused and Invalid mean nothing was sent.
func orderError(err error) error {
	e, ok := asError(err)
	if !ok {
		return err
	}
	switch e.Kind {
	case Refused:
		return domain.Wrap(err, domain.KindUnprocessable, "ibkr_refused", e.Message+"; nothing was sent")
	case Invalid:
		return domain.Wrap(err, domain.KindInvalid, "invalid_order", e.Message+"; nothing was sent")
	case Unknown:
		return domain.ExchangeUnknown(domain.ExchangeIBKR, domain.ExchangeCode{}, e.Message, timedOut(e), err)
	}
	return domain.ExchangeRejected(domain.ExchangeIBKR, domain.TextExchangeCode(string(e.Kind)), e.Message, err)
}

// timedOut reports whether a request got no answer in time.
func timedOut(e *Error) bool {
	var ne net.Error
	return e.HTTPStatus == 0 && (errors.Is(e.Err, context.DeadlineExceeded) || errors.As(e.Err, &ne) && ne.Timeout())
}

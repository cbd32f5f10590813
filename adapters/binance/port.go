package binance

import (
	"context"
	"encoding/json"
	"errors"
	"net"

	"github.com/tradeops/tradeops/domain"
)

// Exchange is the Client as the execution feature's Binance port
// (app.Binance): domain types in, classified domain errors out.
type Exchange struct {
	c    *Client
	mode domain.TestOrderMode
}

// NewExchange wraps c; live says whether c talks to live Binance (still
// only order/test) rather than the testnet.
func NewExchange(c *Client, live bool) *Exchange {
	mode := domain.TestOrderModeTestnet
	if live {
		mode = domain.TestOrderModeLive
	}
	return &Exchange{c: c, mode: mode}
}

func (e *Exchange) Mode() domain.TestOrderMode { return e.mode }

// ReferencePrice is the ticker price (cached for the client's PriceTTL).
func (e *Exchange) ReferencePrice(ctx context.Context, symbol string) (domain.Price, error) {
	p, err := e.c.Price(ctx, symbol)
	if err != nil {
		return domain.Price{}, marketError(symbol, err)
	}
	price, err := domain.ParsePrice(p.String())
	if err != nil {
		return domain.Price{}, domain.Wrap(err, domain.KindUpstream, "binance_unavailable", "Binance sent an unusable price for "+symbol)
	}
	return price, nil
}

// SymbolFilters are the symbol's exchangeInfo filters (cached for the
// client's RulesTTL). A bound Binance disables (0) stays 0, which the risk
// checks skip; MIN_NOTIONAL and NOTIONAL map to their own filters.
func (e *Exchange) SymbolFilters(ctx context.Context, symbol string) (domain.SymbolFilters, error) {
	r, err := e.c.SymbolRules(ctx, symbol)
	if err != nil {
		return domain.SymbolFilters{}, marketError(symbol, err)
	}
	f := domain.SymbolFilters{
		LotSize:     &domain.LotSizeFilter{MinQty: r.LotSize.MinQty, MaxQty: r.LotSize.MaxQty, StepSize: r.LotSize.StepSize},
		PriceFilter: &domain.PriceFilter{MinPrice: r.PriceFilter.MinPrice, MaxPrice: r.PriceFilter.MaxPrice, TickSize: r.PriceFilter.TickSize},
	}
	switch n := r.Notional; n.Filter {
	case "NOTIONAL":
		f.Notional = &domain.NotionalFilter{MinNotional: n.MinNotional, ApplyMinToMarket: n.ApplyMinToMarket,
			MaxNotional: n.MaxNotional, ApplyMaxToMarket: n.ApplyMaxToMarket}
	case "MIN_NOTIONAL":
		f.MinNotional = &domain.MinNotionalFilter{MinNotional: n.MinNotional, ApplyToMarket: n.ApplyMinToMarket}
	}
	return f, nil
}

// TestOrder sends order to order/test, signed with creds' key and secret.
func (e *Exchange) TestOrder(ctx context.Context, creds domain.ExchangeCredentials, order domain.OrderRequest) (json.RawMessage, error) {
	res, err := e.c.TestOrder(ctx, Credentials{APIKey: creds.Field(domain.FieldAPIKey), Secret: creds.Field(domain.FieldAPISecret)}, Order{
		Symbol:   order.Symbol(),
		Side:     string(order.Side()),
		Type:     string(order.OrderType()),
		Quantity: order.Qty().Decimal(),
		Price:    order.LimitPrice().Decimal(),
	})
	if err != nil {
		return nil, orderError(err)
	}
	return res.Response, nil
}

// marketError classifies a failure of exchangeInfo or ticker/price:
// nothing was ordered, so there is no outcome to report, only whether the
// symbol exists and whether Binance can be asked right now.
func marketError(symbol string, err error) error {
	var ae *APIError
	switch {
	case errors.Is(err, ErrInvalidSymbol):
		return unknownSymbol(symbol, err)
	case !errors.As(err, &ae):
		return err
	case ae.Outcome == OutcomeRateLimited:
		return rateLimited(ae)
	}
	kind := domain.KindUpstream
	if timedOut(ae) {
		kind = domain.KindUpstreamTimeout
	}
	return domain.Wrap(err, kind, "binance_unavailable", "Binance market data is unavailable for "+symbol+": "+ae.Message)
}

// orderError classifies a failed test order: refused before sending, or
// Binance's answer as rejected (-1121 included: the symbol was listed when
// its filters were read), unknown or rate limited.
func orderError(err error) error {
	var ae *APIError
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		return domain.Wrap(err, domain.KindConflict, "secret_unusable",
			"the stored Binance secret cannot sign (store an HMAC secret or an Ed25519 private key in PKCS#8 PEM); nothing was sent")
	case errors.Is(err, ErrInvalidOrder):
		return domain.Wrap(err, domain.KindInvalid, "invalid_order", "Binance cannot take this order; nothing was sent")
	case !errors.As(err, &ae):
		return err
	case ae.Outcome == OutcomeRateLimited:
		return rateLimited(ae)
	case ae.Outcome == OutcomeUnknown:
		return domain.ExchangeUnknown(domain.ExchangeBinance, domain.NumericExchangeCode(ae.Code), ae.Message, timedOut(ae), err)
	}
	return domain.ExchangeRejected(domain.ExchangeBinance, domain.NumericExchangeCode(ae.Code), ae.Message, err)
}

func unknownSymbol(symbol string, err error) error {
	return domain.Wrap(err, domain.KindInvalid, "unknown_symbol", symbol+" is not a Binance symbol")
}

func rateLimited(ae *APIError) error {
	return domain.ExchangeRateLimited(domain.ExchangeBinance, domain.NumericExchangeCode(ae.Code), ae.Message, ae.RetryAfter, ae)
}

// timedOut reports whether a request got no answer in time.
func timedOut(ae *APIError) bool {
	var ne net.Error
	return ae.HTTPStatus == 0 && (errors.Is(ae, context.DeadlineExceeded) || errors.As(ae, &ne) && ne.Timeout())
}

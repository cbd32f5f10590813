package binance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// Order is a spot order to validate with Binance's test endpoint.
type Order struct {
	Symbol   string
	Side     string // "BUY" or "SELL"
	Type     string // "MARKET" or "LIMIT" (sent with timeInForce=GTC)
	Quantity decimal.Decimal
	Price    decimal.Decimal // LIMIT only; zero for MARKET
	// ComputeCommissionRates asks for the commission the order would pay
	// (request weight 20 instead of 1); the response then carries it.
	ComputeCommissionRates bool
}

// TestOrderResult is Binance's answer to a test order that passed.
type TestOrderResult struct {
	// Response is `{}`, or the commission objects when they were asked for.
	Response json.RawMessage
	// UsedWeight1M is X-MBX-USED-WEIGHT-1M: this IP's request weight in the
	// current minute (0 when the header is absent).
	UsedWeight1M int
}

// TestOrder sends o to POST /api/v3/order/test: Binance validates it
// (signature, timestamp, symbol, filters) and never sends it to the matching
// engine. A malformed order or unusable credentials fail before anything is
// sent (ErrInvalidOrder, ErrInvalidCredentials); every other failure is an
// *APIError whose Outcome says whether Binance rejected it.
func (c *Client) TestOrder(ctx context.Context, creds Credentials, o Order) (TestOrderResult, error) {
	params, err := o.params()
	if err != nil {
		return TestOrderResult{}, err
	}
	r, err := c.postSigned(ctx, creds, "/api/v3/order/test", params)
	if err != nil {
		return TestOrderResult{}, err
	}
	return TestOrderResult{Response: json.RawMessage(r.body), UsedWeight1M: r.usedWeight}, nil
}

// params encodes o in Binance's documented parameter order. Every value is
// from a closed set or a decimal, so none needs escaping.
func (o Order) params() (string, error) {
	if err := checkSymbol(o.Symbol); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidOrder, err)
	}
	if o.Side != "BUY" && o.Side != "SELL" {
		return "", fmt.Errorf("%w: side %q must be BUY or SELL", ErrInvalidOrder, o.Side)
	}
	if !o.Quantity.IsPositive() {
		return "", fmt.Errorf("%w: quantity must be positive", ErrInvalidOrder)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "symbol=%s&side=%s&type=%s", o.Symbol, o.Side, o.Type)
	switch o.Type {
	case "MARKET":
		if !o.Price.IsZero() {
			return "", fmt.Errorf("%w: a MARKET order takes no price", ErrInvalidOrder)
		}
		fmt.Fprintf(&b, "&quantity=%s", o.Quantity)
	case "LIMIT":
		if !o.Price.IsPositive() {
			return "", fmt.Errorf("%w: a LIMIT order needs a positive price", ErrInvalidOrder)
		}
		fmt.Fprintf(&b, "&timeInForce=GTC&quantity=%s&price=%s", o.Quantity, o.Price)
	default:
		return "", fmt.Errorf("%w: type %q must be MARKET or LIMIT", ErrInvalidOrder, o.Type)
	}
	if o.ComputeCommissionRates {
		b.WriteString("&computeCommissionRates=true")
	}
	return b.String(), nil
}

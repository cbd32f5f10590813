package domain

import "strings"

// Side is BUY or SELL.
type Side string

const (
	SideBuy  Side = "BUY"
	SideSell Side = "SELL"
)

// OrderType is MARKET (the default) or LIMIT (which needs a price).
type OrderType string

const (
	OrderTypeMarket OrderType = "MARKET"
	OrderTypeLimit  OrderType = "LIMIT"
)

// maxSymbolLength matches Binance's longest symbols with room to spare;
// IBKR tickers are shorter.
const maxSymbolLength = 20

// ParseSide validates a side, case-insensitively.
func ParseSide(raw string) (Side, error) {
	switch s, _ := asciiUpper(raw); Side(s) {
	case SideBuy, SideSell:
		return Side(s), nil
	}
	return "", Errorf(KindInvalid, "invalid_side", "side must be %q or %q", SideBuy, SideSell)
}

// ParseOrderType validates an order type, case-insensitively; empty means
// MARKET.
func ParseOrderType(raw string) (OrderType, error) {
	if raw == "" {
		return OrderTypeMarket, nil
	}
	switch t, _ := asciiUpper(raw); OrderType(t) {
	case OrderTypeMarket, OrderTypeLimit:
		return OrderType(t), nil
	}
	return "", Errorf(KindInvalid, "invalid_order_type", "order_type must be %q or %q", OrderTypeMarket, OrderTypeLimit)
}

// ParseSymbol validates a symbol: 1 to 20 ASCII letters or digits, returned
// upper-cased. Only ASCII is looked at, so a NUL byte, invalid UTF-8 or a
// letter whose Unicode upper case is ASCII ("ſ" → "S") is refused rather
// than folded into a valid-looking symbol.
func ParseSymbol(raw string) (string, error) {
	up, ok := asciiUpper(raw)
	if ok && len(up) >= 1 && len(up) <= maxSymbolLength && strings.IndexFunc(up, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) < 0 {
		return up, nil
	}
	return "", Errorf(KindInvalid, "invalid_symbol", "symbol must be 1 to %d letters or digits, such as BTCUSDT", maxSymbolLength)
}

// asciiUpper upper-cases s when it is pure ASCII; ok is false otherwise.
// strings.ToUpper and strings.EqualFold apply Unicode case rules, under
// which "ſell" equals "SELL".
func asciiUpper(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return "", false
		}
	}
	return strings.ToUpper(s), true
}

// OrderRequest is a validated order as a caller asked for it: what prepare
// decides on and what a test order sends.
type OrderRequest struct {
	exchange  Exchange
	symbol    string
	side      Side
	orderType OrderType
	qty       Quantity
	price     Price
}

// NewOrderRequest validates every field of an order. qty and price are the
// raw texts of JSON numbers or strings (see ParseQuantity); price is "" when
// absent. A LIMIT order needs a price and a MARKET order must not have one,
// as at the exchanges. The first invalid field is reported, looked at in
// the order exchange, symbol, side, qty, order type, price.
func NewOrderRequest(exchange, symbol, side, qty, price, orderType string) (OrderRequest, error) {
	var (
		o   OrderRequest
		err error
	)
	if o.exchange, err = ParseExchange(exchange); err != nil {
		return OrderRequest{}, err
	}
	if o.symbol, err = ParseSymbol(symbol); err != nil {
		return OrderRequest{}, err
	}
	if o.side, err = ParseSide(side); err != nil {
		return OrderRequest{}, err
	}
	if o.qty, err = ParseQuantity(qty); err != nil {
		return OrderRequest{}, err
	}
	if o.orderType, err = ParseOrderType(orderType); err != nil {
		return OrderRequest{}, err
	}
	switch {
	case o.orderType == OrderTypeLimit && price == "":
		return OrderRequest{}, Errorf(KindInvalid, "invalid_price", "a LIMIT order needs a price")
	case o.orderType == OrderTypeMarket && price != "":
		return OrderRequest{}, Errorf(KindInvalid, "invalid_price", "a MARKET order takes no price; set order_type to LIMIT")
	case price != "":
		if o.price, err = ParsePrice(price); err != nil {
			return OrderRequest{}, err
		}
	}
	return o, nil
}

func (o OrderRequest) Exchange() Exchange   { return o.exchange }
func (o OrderRequest) Symbol() string       { return o.symbol }
func (o OrderRequest) Side() Side           { return o.side }
func (o OrderRequest) OrderType() OrderType { return o.orderType }
func (o OrderRequest) Qty() Quantity        { return o.qty }

// LimitPrice is the price of a LIMIT order; the zero Price for MARKET.
func (o OrderRequest) LimitPrice() Price { return o.price }

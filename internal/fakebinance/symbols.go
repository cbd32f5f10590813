package fakebinance

import (
	"github.com/shopspring/decimal"
)

// Symbol is one spot market of the fake.
type Symbol struct {
	Symbol, BaseAsset, QuoteAsset string
	Status                        string // "TRADING" unless set otherwise
	BasePrecision                 int    // decimals allowed in a quantity
	QuotePrecision                int    // decimals allowed in a price
	Price                         string // initial ticker price
	Filters                       []Filter
}

// Filter is one entry of a symbol's "filters", in Binance's terms:
//
//	PRICE_FILTER     Min/Max/Step = minPrice/maxPrice/tickSize
//	LOT_SIZE,
//	MARKET_LOT_SIZE  Min/Max/Step = minQty/maxQty/stepSize
//	NOTIONAL         Min/Max = minNotional/maxNotional, ApplyMin/ApplyMax = applyMinToMarket/applyMaxToMarket
//	MIN_NOTIONAL     Min = minNotional, ApplyMin = applyToMarket
//	MAX_NUM_ORDERS   Limit = maxNumOrders (listed only; the fake keeps no orders)
//
// A zero Min, Max or Step disables that rule, as on Binance.
type Filter struct {
	Type               string
	Min, Max, Step     string
	ApplyMin, ApplyMax bool
	AvgPriceMins       int
	Limit              int
}

// DefaultSymbols are BTCUSDT and ETHUSDT with Binance's spot filters.
func DefaultSymbols() []Symbol {
	return []Symbol{
		{
			Symbol: "BTCUSDT", BaseAsset: "BTC", QuoteAsset: "USDT", Status: "TRADING",
			BasePrecision: 8, QuotePrecision: 8, Price: "95000.00",
			Filters: []Filter{
				{Type: "PRICE_FILTER", Min: "0.01", Max: "1000000", Step: "0.01"},
				{Type: "LOT_SIZE", Min: "0.00001", Max: "9000", Step: "0.00001"},
				{Type: "MARKET_LOT_SIZE", Min: "0", Max: "85", Step: "0"},
				{Type: "NOTIONAL", Min: "5", Max: "9000000", ApplyMin: true, ApplyMax: false, AvgPriceMins: 5},
				{Type: "MAX_NUM_ORDERS", Limit: 200},
			},
		},
		{
			Symbol: "ETHUSDT", BaseAsset: "ETH", QuoteAsset: "USDT", Status: "TRADING",
			BasePrecision: 8, QuotePrecision: 8, Price: "3500.00",
			Filters: []Filter{
				{Type: "PRICE_FILTER", Min: "0.01", Max: "1000000", Step: "0.01"},
				{Type: "LOT_SIZE", Min: "0.0001", Max: "9000", Step: "0.0001"},
				{Type: "MARKET_LOT_SIZE", Min: "0", Max: "2500", Step: "0"},
				{Type: "NOTIONAL", Min: "5", Max: "9000000", ApplyMin: true, ApplyMax: false, AvgPriceMins: 5},
				{Type: "MAX_NUM_ORDERS", Limit: 200},
			},
		},
	}
}

// symbol is a Symbol with its filters parsed once.
type symbol struct {
	Symbol
	filters []filter
}

type filter struct {
	Filter
	min, max, step decimal.Decimal
}

func parseSymbol(s Symbol) symbol {
	out := symbol{Symbol: s}
	for _, f := range s.Filters {
		out.filters = append(out.filters, filter{Filter: f, min: dec(f.Min), max: dec(f.Max), step: dec(f.Step)})
	}
	return out
}

// dec parses a decimal the test author wrote; "" is zero.
func dec(s string) decimal.Decimal {
	if s == "" {
		return decimal.Zero
	}
	return decimal.RequireFromString(s)
}

// fixed8 renders a decimal as Binance does: eight decimals.
func fixed8(d decimal.Decimal) string { return d.StringFixed(8) }

// info renders the symbol's exchangeInfo entry.
func (s symbol) info() map[string]any {
	filters := make([]map[string]any, 0, len(s.filters))
	for _, f := range s.filters {
		m := map[string]any{"filterType": f.Type}
		switch f.Type {
		case "PRICE_FILTER":
			m["minPrice"], m["maxPrice"], m["tickSize"] = fixed8(f.min), fixed8(f.max), fixed8(f.step)
		case "LOT_SIZE", "MARKET_LOT_SIZE":
			m["minQty"], m["maxQty"], m["stepSize"] = fixed8(f.min), fixed8(f.max), fixed8(f.step)
		case "NOTIONAL":
			m["minNotional"], m["maxNotional"] = fixed8(f.min), fixed8(f.max)
			m["applyMinToMarket"], m["applyMaxToMarket"], m["avgPriceMins"] = f.ApplyMin, f.ApplyMax, f.AvgPriceMins
		case "MIN_NOTIONAL":
			m["minNotional"], m["applyToMarket"], m["avgPriceMins"] = fixed8(f.min), f.ApplyMin, f.AvgPriceMins
		case "MAX_NUM_ORDERS":
			m["maxNumOrders"] = f.Limit
		}
		filters = append(filters, m)
	}
	return map[string]any{
		"symbol":                         s.Symbol.Symbol,
		"status":                         s.Status,
		"baseAsset":                      s.BaseAsset,
		"baseAssetPrecision":             s.BasePrecision,
		"quoteAsset":                     s.QuoteAsset,
		"quotePrecision":                 s.QuotePrecision,
		"quoteAssetPrecision":            s.QuotePrecision,
		"baseCommissionPrecision":        s.BasePrecision,
		"quoteCommissionPrecision":       s.QuotePrecision,
		"orderTypes":                     []string{"LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"},
		"icebergAllowed":                 true,
		"ocoAllowed":                     true,
		"isSpotTradingAllowed":           true,
		"isMarginTradingAllowed":         false,
		"filters":                        filters,
		"permissions":                    []string{},
		"permissionSets":                 [][]string{{"SPOT"}},
		"defaultSelfTradePreventionMode": "EXPIRE_MAKER",
	}
}

// check applies the symbol's filters to an order the way Binance does and
// returns the name of the first failing filter, or "". avgPrice stands in
// for Binance's average price when a MARKET order's notional is checked.
func (s symbol) check(orderType string, qty, price, avgPrice decimal.Decimal) string {
	market := orderType == "MARKET"
	for _, f := range s.filters {
		ok := true
		switch f.Type {
		case "PRICE_FILTER":
			ok = market || inRange(price, f.min, f.max, f.step)
		case "LOT_SIZE":
			ok = inRange(qty, f.min, f.max, f.step)
		case "MARKET_LOT_SIZE":
			ok = !market || inRange(qty, f.min, f.max, f.step)
		case "NOTIONAL", "MIN_NOTIONAL":
			p := price
			if market {
				p = avgPrice
			}
			n := qty.Mul(p)
			checkMin := !market || f.ApplyMin
			checkMax := f.Type == "NOTIONAL" && (!market || f.ApplyMax)
			ok = !(checkMin && n.LessThan(f.min)) && !(checkMax && f.max.IsPositive() && n.GreaterThan(f.max))
		}
		if !ok {
			return f.Type
		}
	}
	return ""
}

// inRange: min ≤ v ≤ max and (v − min) a multiple of step, each rule off
// when zero.
func inRange(v, lo, hi, step decimal.Decimal) bool {
	if lo.IsPositive() && v.LessThan(lo) {
		return false
	}
	if hi.IsPositive() && v.GreaterThan(hi) {
		return false
	}
	return !step.IsPositive() || v.Sub(lo).Mod(step).IsZero()
}

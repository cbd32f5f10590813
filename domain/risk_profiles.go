package domain

import (
	"slices"

	"github.com/shopspring/decimal"
)

// RiskRules is one risk profile's rule set (DESIGN §8), evaluated by
// Evaluate. Money amounts (notional) are in the instrument's quote
// currency; every listed instrument is quoted in USD or USDT, which the
// rules treat as one unit.
type RiskRules struct {
	Profile RiskProfile
	// Halted is the kill switch: every order is rejected (RISK_KILL_SWITCH).
	Halted bool
	// Symbols is the allow-list, per exchange, with each symbol's largest
	// quantity per order. A symbol not listed may not be traded.
	Symbols []SymbolLimit
	// MaxNotional caps qty × price of one order.
	MaxNotional decimal.Decimal
	// PriceCollarPercent bounds a LIMIT price to ±this percent of the
	// reference price.
	PriceCollarPercent decimal.Decimal
	// MaxDailyOrders and MaxDailyNotional cap what one user may have
	// accepted per UTC day, this order included.
	MaxDailyOrders   int
	MaxDailyNotional decimal.Decimal
}

// SymbolLimit allows one symbol on one exchange, up to MaxQty per order.
type SymbolLimit struct {
	Exchange Exchange
	Symbol   string
	MaxQty   decimal.Decimal
}

// riskProfiles is the data of the two built-in profiles. model2 must stay
// stricter than loose in every rule, and both must accept the runbook's
// canonical orders (0.01 BTCUSDT at 20,000–250,000 USDT, 1 AAPL at
// 100–1,000 USD); risk_test.go holds both properties.
var riskProfiles = map[RiskProfile]RiskRules{
	RiskProfileModel2: {
		Profile: RiskProfileModel2,
		Symbols: []SymbolLimit{
			{ExchangeBinance, "BTCUSDT", dec("0.05")},
			{ExchangeBinance, "ETHUSDT", dec("1")},
			{ExchangeIBKR, "AAPL", dec("20")},
			{ExchangeIBKR, "MSFT", dec("20")},
		},
		MaxNotional:        dec("5000"),
		PriceCollarPercent: dec("2"),
		MaxDailyOrders:     50,
		MaxDailyNotional:   dec("50000"),
	},
	RiskProfileLoose: {
		Profile: RiskProfileLoose,
		Symbols: []SymbolLimit{
			{ExchangeBinance, "BTCUSDT", dec("5")},
			{ExchangeBinance, "ETHUSDT", dec("100")},
			{ExchangeBinance, "BNBUSDT", dec("500")},
			{ExchangeBinance, "SOLUSDT", dec("2000")},
			{ExchangeBinance, "XRPUSDT", dec("500000")},
			{ExchangeIBKR, "AAPL", dec("2000")},
			{ExchangeIBKR, "MSFT", dec("2000")},
			{ExchangeIBKR, "GOOGL", dec("2000")},
			{ExchangeIBKR, "AMZN", dec("2000")},
			{ExchangeIBKR, "NVDA", dec("2000")},
			{ExchangeIBKR, "SPY", dec("2000")},
		},
		MaxNotional:        dec("100000"),
		PriceCollarPercent: dec("10"),
		MaxDailyOrders:     500,
		MaxDailyNotional:   dec("2000000"),
	},
}

// RulesFor returns the rules of profile p, a copy the caller may change
// (to raise the kill switch, say). An unknown name gets the strict default
// profile's rules: failing safe, as users do (DefaultRiskProfile).
func RulesFor(p RiskProfile) RiskRules {
	r, ok := riskProfiles[p]
	if !ok {
		r = riskProfiles[DefaultRiskProfile]
	}
	r.Symbols = slices.Clone(r.Symbols)
	return r
}

// symbolLimit finds the allow-list entry for symbol on exchange.
func (r RiskRules) symbolLimit(exchange Exchange, symbol string) (SymbolLimit, bool) {
	i := slices.IndexFunc(r.Symbols, func(l SymbolLimit) bool { return l.Exchange == exchange && l.Symbol == symbol })
	if i < 0 {
		return SymbolLimit{}, false
	}
	return r.Symbols[i], true
}

// dec is for the literals above, which are constants: a typo panics at
// start-up (and in every test), not at an order.
func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

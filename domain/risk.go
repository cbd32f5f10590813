package domain

import (
	"slices"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// Check codes: stable strings that responses, events and the daily
// comparison carry. Never rename one.
const (
	CheckKillSwitch          = "RISK_KILL_SWITCH"
	CheckReferencePrice      = "RISK_REFERENCE_PRICE"
	CheckSymbolNotAllowed    = "RISK_SYMBOL_NOT_ALLOWED"
	CheckMaxQty              = "RISK_MAX_QTY"
	CheckMaxNotional         = "RISK_MAX_NOTIONAL"
	CheckPriceCollar         = "RISK_PRICE_COLLAR"
	CheckDailyOrderCount     = "RISK_DAILY_ORDER_COUNT"
	CheckDailyNotional       = "RISK_DAILY_NOTIONAL"
	CheckExchangeLotSize     = "EXCHANGE_LOT_SIZE"
	CheckExchangePriceFilter = "EXCHANGE_PRICE_FILTER"
	CheckExchangeMinNotional = "EXCHANGE_MIN_NOTIONAL"
	CheckExchangeNotional    = "EXCHANGE_NOTIONAL"
)

// Check is one rule's verdict on an order, as the prepare response shows
// it. Limit and Value are decimal strings, except for the kill switch
// ("off"/"on"), a missing reference price (Value "missing"), the allow-list
// (Limit lists the exchange's symbols, Value is the symbol), the max qty of
// an unlisted symbol (Limit "n/a", passed: the allow-list rejects it), the
// collar (Limit is the band "low..high") and the exchange filters (Limit is
// ">= x", "<= x" or "multiple of x").
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Limit  string `json:"limit"`
	Value  string `json:"value"`
	Code   string `json:"code"`
}

// DecisionOutcome is "accepted" or "rejected".
type DecisionOutcome string

const (
	DecisionAccepted DecisionOutcome = "accepted"
	DecisionRejected DecisionOutcome = "rejected"
)

// Decision is a profile's verdict on an order: accepted when every check
// passed. Checks holds every check that applies, failed or not, so that a
// shadow evaluation can be compared check by check.
type Decision struct {
	Profile RiskProfile
	Outcome DecisionOutcome
	// Notional is qty × (the limit price, or the reference price for a
	// MARKET order), exact.
	Notional decimal.Decimal
	Checks   []Check
}

// Accepted reports whether every check passed.
func (d Decision) Accepted() bool { return d.Outcome == DecisionAccepted }

// FailedCodes lists the codes of the failed checks, each once, in check
// order; empty (not nil) when none failed, so it marshals as [].
func (d Decision) FailedCodes() []string {
	codes := []string{}
	for _, c := range d.Checks {
		if !c.Passed && !slices.Contains(codes, c.Code) {
			codes = append(codes, c.Code)
		}
	}
	return codes
}

// Divergent reports whether two profiles decided one order differently,
// which is what the daily comparison counts.
func Divergent(a, b Decision) bool { return a.Outcome != b.Outcome }

// DailyUsage is what one user had accepted on one UTC day under their own
// profile: the state the daily limits are checked against.
type DailyUsage struct {
	Orders   int
	Notional decimal.Decimal
}

// Apply returns the usage after decision d: one more order and d's notional
// when it was accepted, unchanged when it was rejected.
func (u DailyUsage) Apply(d Decision) DailyUsage {
	if !d.Accepted() {
		return u
	}
	return DailyUsage{Orders: u.Orders + 1, Notional: u.Notional.Add(d.Notional)}
}

// SymbolFilters are an exchange's own rules for one symbol (Binance's
// exchangeInfo filters). A nil filter is absent and not checked; IBKR has
// none. Within a filter a bound of zero is disabled, as Binance documents.
type SymbolFilters struct {
	LotSize     *LotSizeFilter
	PriceFilter *PriceFilter
	MinNotional *MinNotionalFilter
	Notional    *NotionalFilter
}

// LotSizeFilter is Binance's LOT_SIZE: minQty ≤ qty ≤ maxQty and
// (qty − minQty) a multiple of stepSize.
type LotSizeFilter struct {
	MinQty, MaxQty, StepSize decimal.Decimal
}

// PriceFilter is Binance's PRICE_FILTER: minPrice ≤ price ≤ maxPrice and
// (price − minPrice) a multiple of tickSize. It applies to orders with a
// price (LIMIT), not to MARKET orders.
type PriceFilter struct {
	MinPrice, MaxPrice, TickSize decimal.Decimal
}

// MinNotionalFilter is Binance's older MIN_NOTIONAL: price × qty ≥
// minNotional, for MARKET orders only when ApplyToMarket.
type MinNotionalFilter struct {
	MinNotional   decimal.Decimal
	ApplyToMarket bool
}

// NotionalFilter is Binance's NOTIONAL: minNotional ≤ price × qty ≤
// maxNotional, each bound applied to MARKET orders only when its flag says
// so. For MARKET orders Binance prices the notional at the average price of
// the last avgPriceMins; the reference price stands in for it here.
type NotionalFilter struct {
	MinNotional      decimal.Decimal
	ApplyMinToMarket bool
	MaxNotional      decimal.Decimal
	ApplyMaxToMarket bool
}

// Evaluate decides order under rules. It is pure and exact: every quantity,
// price and sum is a decimal, and every check is evaluated and reported —
// none short-circuits another. reference is the market price the order is
// valued at (MARKET) or collared against (LIMIT); without one the order is
// rejected (RISK_REFERENCE_PRICE). usage is the user's accepted total so far
// today; the daily checks count this order in.
func Evaluate(rules RiskRules, order OrderRequest, reference Price, filters SymbolFilters, usage DailyUsage) Decision {
	qty := order.Qty().Decimal()
	ref := reference.Decimal()
	price := ref
	if limit := order.LimitPrice(); !limit.IsZero() {
		price = limit.Decimal()
	}
	notional := qty.Mul(price)
	sym, listed := rules.symbolLimit(order.Exchange(), order.Symbol())
	// Shift, not Div: decimal's Div rounds to 16 places, Shift is exact.
	collar := ref.Mul(rules.PriceCollarPercent).Shift(-2)
	low, high := ref.Sub(collar), ref.Add(collar)
	dayOrders := usage.Orders + 1
	dayNotional := usage.Notional.Add(notional)

	checks := []Check{
		{"kill_switch", !rules.Halted, "off", onOff(rules.Halted), CheckKillSwitch},
		{"reference_price", !reference.IsZero(), "> 0", orMissing(reference.String()), CheckReferencePrice},
		{"symbol_allowed", listed, rules.allowed(order.Exchange()), order.Symbol(), CheckSymbolNotAllowed},
		// An unlisted symbol has no quantity cap to break: symbol_allowed
		// alone rejects it, so the daily comparison counts it once.
		{"max_qty", !listed || qty.LessThanOrEqual(sym.MaxQty), maxQtyLimit(sym, listed), qty.String(), CheckMaxQty},
		{"max_notional", notional.LessThanOrEqual(rules.MaxNotional), rules.MaxNotional.String(), notional.String(), CheckMaxNotional},
		{"price_collar", price.GreaterThanOrEqual(low) && price.LessThanOrEqual(high), low.String() + ".." + high.String(), price.String(), CheckPriceCollar},
		{"daily_order_count", dayOrders <= rules.MaxDailyOrders, strconv.Itoa(rules.MaxDailyOrders), strconv.Itoa(dayOrders), CheckDailyOrderCount},
		{"daily_notional", dayNotional.LessThanOrEqual(rules.MaxDailyNotional), rules.MaxDailyNotional.String(), dayNotional.String(), CheckDailyNotional},
	}
	checks = append(checks, filters.checks(order, qty, notional)...)

	outcome := DecisionAccepted
	for _, c := range checks {
		if !c.Passed {
			outcome = DecisionRejected
		}
	}
	return Decision{Profile: rules.Profile, Outcome: outcome, Notional: notional, Checks: checks}
}

// checks reports each exchange filter bound that applies to order. Binance
// would not check a disabled (zero) bound, PRICE_FILTER on a MARKET order,
// or a notional bound whose apply-to-market flag is off, so neither do we.
func (f SymbolFilters) checks(order OrderRequest, qty, notional decimal.Decimal) []Check {
	var out []Check
	market := order.OrderType() == OrderTypeMarket
	if l := f.LotSize; l != nil {
		out = appendMin(out, "lot_size_min_qty", CheckExchangeLotSize, qty, l.MinQty)
		out = appendMax(out, "lot_size_max_qty", CheckExchangeLotSize, qty, l.MaxQty)
		out = appendStep(out, "lot_size_step_size", CheckExchangeLotSize, qty, l.MinQty, l.StepSize)
	}
	if p := f.PriceFilter; p != nil && !market {
		price := order.LimitPrice().Decimal()
		out = appendMin(out, "price_filter_min_price", CheckExchangePriceFilter, price, p.MinPrice)
		out = appendMax(out, "price_filter_max_price", CheckExchangePriceFilter, price, p.MaxPrice)
		out = appendStep(out, "price_filter_tick_size", CheckExchangePriceFilter, price, p.MinPrice, p.TickSize)
	}
	if m := f.MinNotional; m != nil && (!market || m.ApplyToMarket) {
		out = appendMin(out, "min_notional", CheckExchangeMinNotional, notional, m.MinNotional)
	}
	if n := f.Notional; n != nil {
		if !market || n.ApplyMinToMarket {
			out = appendMin(out, "notional_min", CheckExchangeNotional, notional, n.MinNotional)
		}
		if !market || n.ApplyMaxToMarket {
			out = appendMax(out, "notional_max", CheckExchangeNotional, notional, n.MaxNotional)
		}
	}
	return out
}

func appendMin(out []Check, name, code string, v, minimum decimal.Decimal) []Check {
	if !minimum.IsPositive() {
		return out
	}
	return append(out, Check{name, v.GreaterThanOrEqual(minimum), ">= " + minimum.String(), v.String(), code})
}

func appendMax(out []Check, name, code string, v, maximum decimal.Decimal) []Check {
	if !maximum.IsPositive() {
		return out
	}
	return append(out, Check{name, v.LessThanOrEqual(maximum), "<= " + maximum.String(), v.String(), code})
}

// appendStep checks that v − base is a whole multiple of step, exactly:
// decimal's Mod has no rounding, so 0.010001 is not a multiple of 0.00001.
func appendStep(out []Check, name, code string, v, base, step decimal.Decimal) []Check {
	if !step.IsPositive() {
		return out
	}
	return append(out, Check{name, v.Sub(base).Mod(step).IsZero(), "multiple of " + step.String(), v.String(), code})
}

// allowed lists the symbols allowed on exchange, for the allow-list check.
func (r RiskRules) allowed(exchange Exchange) string {
	var syms []string
	for _, l := range r.Symbols {
		if l.Exchange == exchange {
			syms = append(syms, l.Symbol)
		}
	}
	return strings.Join(syms, ",")
}

func maxQtyLimit(l SymbolLimit, listed bool) string {
	if !listed {
		return "n/a"
	}
	return l.MaxQty.String()
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func orMissing(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}

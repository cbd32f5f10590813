package domain_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/domain"
)

func mustOrder(t *testing.T, exchange, symbol, qty, price, typ string) domain.OrderRequest {
	t.Helper()
	o, err := domain.NewOrderRequest(exchange, symbol, "BUY", qty, price, typ)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func mustPrice(t *testing.T, s string) domain.Price {
	t.Helper()
	p, err := domain.ParsePrice(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// btcFilters are BTCUSDT's filters as Binance's exchangeInfo lists them.
var btcFilters = domain.SymbolFilters{
	LotSize:     &domain.LotSizeFilter{MinQty: d("0.00001"), MaxQty: d("9000"), StepSize: d("0.00001")},
	PriceFilter: &domain.PriceFilter{MinPrice: d("0.01"), MaxPrice: d("1000000"), TickSize: d("0.01")},
	Notional:    &domain.NotionalFilter{MinNotional: d("5"), ApplyMinToMarket: true, MaxNotional: d("9000000"), ApplyMaxToMarket: false},
}

func findCheck(t *testing.T, dec domain.Decision, name string) domain.Check {
	t.Helper()
	for _, c := range dec.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, dec.Checks)
	return domain.Check{}
}

func TestBothProfilesAcceptTheRunbookOrders(t *testing.T) {
	for _, p := range []domain.RiskProfile{domain.RiskProfileModel2, domain.RiskProfileLoose} {
		rules := domain.RulesFor(p)
		for _, ref := range []string{"20000", "20000.01", "65432.1", "100000", "187654.32", "250000"} {
			dec := domain.Evaluate(rules, mustOrder(t, "BINANCE", "BTCUSDT", "0.01", "", ""), mustPrice(t, ref), btcFilters, domain.DailyUsage{})
			if !dec.Accepted() || len(dec.FailedCodes()) != 0 || dec.Profile != p {
				t.Errorf("%s: 0.01 BTCUSDT at %s: %+v", p, ref, dec)
			}
			if want := d(ref).Mul(d("0.01")); !dec.Notional.Equal(want) {
				t.Errorf("%s: notional %s, want %s", p, dec.Notional, want)
			}
		}
		for _, ref := range []string{"100", "187.42", "1000"} {
			dec := domain.Evaluate(rules, mustOrder(t, "IBKR", "AAPL", "1", "", ""), mustPrice(t, ref), domain.SymbolFilters{}, domain.DailyUsage{})
			if !dec.Accepted() || dec.Notional.String() != d(ref).String() {
				t.Errorf("%s: 1 AAPL at %s: %+v", p, ref, dec)
			}
		}
	}
}

// The profiles are data; this holds the property DESIGN §8 asks of it.
func TestModel2IsStricterThanLooseEverywhere(t *testing.T) {
	strict, loose := domain.RulesFor(domain.RiskProfileModel2), domain.RulesFor(domain.RiskProfileLoose)
	for _, s := range strict.Symbols {
		i := slices.IndexFunc(loose.Symbols, func(l domain.SymbolLimit) bool { return l.Exchange == s.Exchange && l.Symbol == s.Symbol })
		if i < 0 || !s.MaxQty.LessThan(loose.Symbols[i].MaxQty) {
			t.Errorf("model2 allows %s %s up to %s; loose must allow more", s.Exchange, s.Symbol, s.MaxQty)
		}
	}
	if len(strict.Symbols) >= len(loose.Symbols) ||
		!strict.MaxNotional.LessThan(loose.MaxNotional) ||
		!strict.PriceCollarPercent.LessThan(loose.PriceCollarPercent) ||
		strict.MaxDailyOrders >= loose.MaxDailyOrders ||
		!strict.MaxDailyNotional.LessThan(loose.MaxDailyNotional) ||
		strict.Halted || loose.Halted {
		t.Errorf("model2 %+v is not stricter than loose %+v", strict, loose)
	}
}

func TestRulesForHandsOutCopiesAndFailsSafe(t *testing.T) {
	r := domain.RulesFor(domain.RiskProfileLoose)
	r.Symbols[0].Symbol = "CHANGED"
	r.Halted = true
	if again := domain.RulesFor(domain.RiskProfileLoose); again.Symbols[0].Symbol == "CHANGED" || again.Halted {
		t.Fatal("RulesFor shares the table with its callers")
	}
	if got := domain.RulesFor("nonsense"); got.Profile != domain.RiskProfileModel2 {
		t.Fatalf("unknown profile got %s's rules, want the strict default", got.Profile)
	}
	for p, want := range map[domain.RiskProfile]domain.RiskProfile{
		domain.RiskProfileModel2: domain.RiskProfileLoose,
		domain.RiskProfileLoose:  domain.RiskProfileModel2,
		"nonsense":               domain.RiskProfileLoose,
	} {
		if got := domain.ShadowOf(p); got != want {
			t.Errorf("ShadowOf(%s) = %s, want %s", p, got, want)
		}
	}
}

// An order that breaks every rule gets every check reported and failed: none
// short-circuits another. (max_qty has nothing to say about a symbol that is
// not allowed at all.)
func TestEvaluateReportsEveryCheck(t *testing.T) {
	rules := domain.RulesFor(domain.RiskProfileModel2)
	rules.Halted = true
	order := mustOrder(t, "BINANCE", "DOGEUSDT", "1000000.000001", "0.5", "LIMIT")
	usage := domain.DailyUsage{Orders: 50, Notional: d("50000")}
	filters := domain.SymbolFilters{
		LotSize:     &domain.LotSizeFilter{MinQty: d("2000000"), MaxQty: d("1"), StepSize: d("1")},
		PriceFilter: &domain.PriceFilter{MinPrice: d("1"), MaxPrice: d("0.1"), TickSize: d("0.3")},
		MinNotional: &domain.MinNotionalFilter{MinNotional: d("1000000")},
		Notional:    &domain.NotionalFilter{MinNotional: d("1000000"), MaxNotional: d("1")},
	}
	dec := domain.Evaluate(rules, order, domain.Price{}, filters, usage)
	var names []string
	for _, c := range dec.Checks {
		names = append(names, c.Name)
		if c.Passed != (c.Name == "max_qty") {
			t.Errorf("check %+v", c)
		}
	}
	wantNames := []string{"kill_switch", "reference_price", "symbol_allowed", "max_qty", "max_notional", "price_collar",
		"daily_order_count", "daily_notional",
		"lot_size_min_qty", "lot_size_max_qty", "lot_size_step_size",
		"price_filter_min_price", "price_filter_max_price", "price_filter_tick_size",
		"min_notional", "notional_min", "notional_max"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("checks %v, want %v", names, wantNames)
	}
	wantCodes := []string{
		domain.CheckKillSwitch, domain.CheckReferencePrice, domain.CheckSymbolNotAllowed, domain.CheckMaxNotional,
		domain.CheckPriceCollar, domain.CheckDailyOrderCount, domain.CheckDailyNotional, domain.CheckExchangeLotSize,
		domain.CheckExchangePriceFilter, domain.CheckExchangeMinNotional, domain.CheckExchangeNotional,
	}
	if got := dec.FailedCodes(); !slices.Equal(got, wantCodes) || dec.Outcome != domain.DecisionRejected {
		t.Errorf("failed codes %v (%s), want each once: %v", got, dec.Outcome, wantCodes)
	}
}

func TestEvaluateReportsPassingChecksWithLimitsAndValues(t *testing.T) {
	dec := domain.Evaluate(domain.RulesFor(domain.RiskProfileModel2), mustOrder(t, "BINANCE", "BTCUSDT", "0.01", "100500", "LIMIT"),
		mustPrice(t, "100000"), btcFilters, domain.DailyUsage{Orders: 3, Notional: d("1234.5")})
	want := []domain.Check{
		{Name: "kill_switch", Passed: true, Limit: "off", Value: "off", Code: "RISK_KILL_SWITCH"},
		{Name: "reference_price", Passed: true, Limit: "> 0", Value: "100000", Code: "RISK_REFERENCE_PRICE"},
		{Name: "symbol_allowed", Passed: true, Limit: "BTCUSDT,ETHUSDT", Value: "BTCUSDT", Code: "RISK_SYMBOL_NOT_ALLOWED"},
		{Name: "max_qty", Passed: true, Limit: "0.05", Value: "0.01", Code: "RISK_MAX_QTY"},
		{Name: "max_notional", Passed: true, Limit: "5000", Value: "1005", Code: "RISK_MAX_NOTIONAL"},
		{Name: "price_collar", Passed: true, Limit: "98000..102000", Value: "100500", Code: "RISK_PRICE_COLLAR"},
		{Name: "daily_order_count", Passed: true, Limit: "50", Value: "4", Code: "RISK_DAILY_ORDER_COUNT"},
		{Name: "daily_notional", Passed: true, Limit: "50000", Value: "2239.5", Code: "RISK_DAILY_NOTIONAL"},
		{Name: "lot_size_min_qty", Passed: true, Limit: ">= 0.00001", Value: "0.01", Code: "EXCHANGE_LOT_SIZE"},
		{Name: "lot_size_max_qty", Passed: true, Limit: "<= 9000", Value: "0.01", Code: "EXCHANGE_LOT_SIZE"},
		{Name: "lot_size_step_size", Passed: true, Limit: "multiple of 0.00001", Value: "0.01", Code: "EXCHANGE_LOT_SIZE"},
		{Name: "price_filter_min_price", Passed: true, Limit: ">= 0.01", Value: "100500", Code: "EXCHANGE_PRICE_FILTER"},
		{Name: "price_filter_max_price", Passed: true, Limit: "<= 1000000", Value: "100500", Code: "EXCHANGE_PRICE_FILTER"},
		{Name: "price_filter_tick_size", Passed: true, Limit: "multiple of 0.01", Value: "100500", Code: "EXCHANGE_PRICE_FILTER"},
		{Name: "notional_min", Passed: true, Limit: ">= 5", Value: "1005", Code: "EXCHANGE_NOTIONAL"},
		{Name: "notional_max", Passed: true, Limit: "<= 9000000", Value: "1005", Code: "EXCHANGE_NOTIONAL"},
	}
	if !slices.Equal(dec.Checks, want) || !dec.Accepted() {
		t.Errorf("got  %+v\nwant %+v", dec.Checks, want)
	}
	// The response shape of DESIGN §5.
	b, _ := json.Marshal(dec.Checks[0])
	if string(b) != `{"name":"kill_switch","passed":true,"limit":"off","value":"off","code":"RISK_KILL_SWITCH"}` {
		t.Errorf("check JSON %s", b)
	}
	if b, _ := json.Marshal(dec.FailedCodes()); string(b) != "[]" {
		t.Errorf("no failures marshal as %s, want []", b)
	}
}

// Each rule at its boundary: the last value that passes and the first that
// fails, compared exactly.
func TestEachRuleAtItsBoundary(t *testing.T) {
	model2 := domain.RulesFor(domain.RiskProfileModel2)
	loose := domain.RulesFor(domain.RiskProfileLoose)
	exact := domain.RulesFor(domain.RiskProfileModel2) // 0.1 + 0.2 == 0.3, which float64 gets wrong
	exact.MaxNotional, exact.MaxDailyNotional = d("0.3"), d("0.3")
	halted := domain.RulesFor(domain.RiskProfileLoose)
	halted.Halted = true
	none := domain.SymbolFilters{}
	for _, tc := range []struct {
		name                   string
		rules                  domain.RiskRules
		exchange, sym, qty, px string // px "" = MARKET
		ref                    string
		usage                  domain.DailyUsage
		filters                domain.SymbolFilters
		check                  string
		pass                   bool
	}{
		{"max qty at limit", model2, "BINANCE", "BTCUSDT", "0.05", "", "50000", domain.DailyUsage{}, btcFilters, "max_qty", true},
		{"max qty above", model2, "BINANCE", "BTCUSDT", "0.05001", "", "50000", domain.DailyUsage{}, btcFilters, "max_qty", false},
		{"unlisted symbol: max qty n/a", model2, "BINANCE", "SOLUSDT", "1", "", "100", domain.DailyUsage{}, none, "max_qty", true},
		{"max notional at limit", model2, "BINANCE", "BTCUSDT", "0.05", "", "100000", domain.DailyUsage{}, btcFilters, "max_notional", true},
		{"max notional a fraction above", model2, "BINANCE", "BTCUSDT", "0.05", "", "100000.01", domain.DailyUsage{}, btcFilters, "max_notional", false},
		{"notional 0.1+0.2 = 0.3", exact, "IBKR", "AAPL", "0.1", "", "3", domain.DailyUsage{}, none, "max_notional", true},
		{"collar top", model2, "BINANCE", "BTCUSDT", "0.01", "102000", "100000", domain.DailyUsage{}, btcFilters, "price_collar", true},
		{"collar above top", model2, "BINANCE", "BTCUSDT", "0.01", "102000.01", "100000", domain.DailyUsage{}, btcFilters, "price_collar", false},
		{"collar bottom", model2, "BINANCE", "BTCUSDT", "0.01", "98000", "100000", domain.DailyUsage{}, btcFilters, "price_collar", true},
		{"collar below bottom", model2, "BINANCE", "BTCUSDT", "0.01", "97999.99", "100000", domain.DailyUsage{}, btcFilters, "price_collar", false},
		{"loose collar top", loose, "BINANCE", "BTCUSDT", "0.01", "110000", "100000", domain.DailyUsage{}, btcFilters, "price_collar", true},
		{"loose collar above", loose, "BINANCE", "BTCUSDT", "0.01", "110000.01", "100000", domain.DailyUsage{}, btcFilters, "price_collar", false},
		{"collar of an odd reference", model2, "IBKR", "AAPL", "1", "190.9338", "187.19", domain.DailyUsage{}, none, "price_collar", true},
		{"collar of an odd reference, a hair above", model2, "IBKR", "AAPL", "1", "190.93380001", "187.19", domain.DailyUsage{}, none, "price_collar", false},
		{"market orders sit on the reference", model2, "IBKR", "AAPL", "1", "", "187.19", domain.DailyUsage{}, none, "price_collar", true},
		{"last daily slot", model2, "IBKR", "AAPL", "1", "", "200", domain.DailyUsage{Orders: 49}, none, "daily_order_count", true},
		{"no slot left", model2, "IBKR", "AAPL", "1", "", "200", domain.DailyUsage{Orders: 50}, none, "daily_order_count", false},
		{"loose last slot", loose, "IBKR", "AAPL", "1", "", "200", domain.DailyUsage{Orders: 499}, none, "daily_order_count", true},
		{"loose no slot left", loose, "IBKR", "AAPL", "1", "", "200", domain.DailyUsage{Orders: 500}, none, "daily_order_count", false},
		{"daily notional to the cent", model2, "IBKR", "AAPL", "5", "", "200", domain.DailyUsage{Orders: 1, Notional: d("49000")}, none, "daily_notional", true},
		{"daily notional a millionth over", model2, "IBKR", "AAPL", "5", "", "200", domain.DailyUsage{Orders: 1, Notional: d("49000.000001")}, none, "daily_notional", false},
		{"daily notional 0.1+0.2 = 0.3", exact, "IBKR", "AAPL", "0.2", "", "1", domain.DailyUsage{Orders: 1, Notional: d("0.1")}, none, "daily_notional", true},
		{"kill switch off", loose, "IBKR", "AAPL", "1", "", "200", domain.DailyUsage{}, none, "kill_switch", true},
		{"kill switch on", halted, "IBKR", "AAPL", "1", "", "200", domain.DailyUsage{}, none, "kill_switch", false},
		{"symbol on the other exchange", loose, "IBKR", "BTCUSDT", "0.01", "", "100000", domain.DailyUsage{}, none, "symbol_allowed", false},
		{"lot step multiple", model2, "BINANCE", "BTCUSDT", "0.01", "", "100000", domain.DailyUsage{}, btcFilters, "lot_size_step_size", true},
		{"lot step off by a millionth", model2, "BINANCE", "BTCUSDT", "0.010001", "", "100000", domain.DailyUsage{}, btcFilters, "lot_size_step_size", false},
		{"lot min qty", model2, "BINANCE", "BTCUSDT", "0.00001", "", "100000", domain.DailyUsage{}, btcFilters, "lot_size_min_qty", true},
		{"lot below min qty", model2, "BINANCE", "BTCUSDT", "0.000009", "", "100000", domain.DailyUsage{}, btcFilters, "lot_size_min_qty", false},
		{"price tick multiple", model2, "BINANCE", "BTCUSDT", "0.01", "100000.01", "100000", domain.DailyUsage{}, btcFilters, "price_filter_tick_size", true},
		{"price between ticks", model2, "BINANCE", "BTCUSDT", "0.01", "100000.005", "100000", domain.DailyUsage{}, btcFilters, "price_filter_tick_size", false},
		{"exchange min notional at 5", model2, "BINANCE", "BTCUSDT", "0.00005", "", "100000", domain.DailyUsage{}, btcFilters, "notional_min", true},
		{"exchange min notional below 5", model2, "BINANCE", "BTCUSDT", "0.00004", "", "100000", domain.DailyUsage{}, btcFilters, "notional_min", false},
	} {
		price := ""
		typ := ""
		if tc.px != "" {
			price, typ = tc.px, "LIMIT"
		}
		dec := domain.Evaluate(tc.rules, mustOrder(t, tc.exchange, tc.sym, tc.qty, price, typ), mustPrice(t, tc.ref), tc.filters, tc.usage)
		c := findCheck(t, dec, tc.check)
		if c.Passed != tc.pass {
			t.Errorf("%s: %+v, want passed=%v", tc.name, c, tc.pass)
		}
		if !tc.pass && (dec.Accepted() || !slices.Contains(dec.FailedCodes(), c.Code)) {
			t.Errorf("%s: a failed %s must reject: %+v", tc.name, c.Code, dec)
		}
	}
}

func TestMissingReferencePriceRejects(t *testing.T) {
	dec := domain.Evaluate(domain.RulesFor(domain.RiskProfileLoose), mustOrder(t, "IBKR", "AAPL", "1", "", ""), domain.Price{}, domain.SymbolFilters{}, domain.DailyUsage{})
	if dec.Accepted() || !slices.Equal(dec.FailedCodes(), []string{domain.CheckReferencePrice}) {
		t.Fatalf("%+v", dec)
	}
	if c := findCheck(t, dec, "reference_price"); c.Value != "missing" {
		t.Fatalf("%+v", c)
	}
}

// Binance's rule for LOT_SIZE and PRICE_FILTER is that (value - min) is a
// multiple of the step, not value itself.
func TestStepsCountFromTheMinimum(t *testing.T) {
	f := domain.SymbolFilters{
		LotSize:     &domain.LotSizeFilter{MinQty: d("0.001"), MaxQty: d("10"), StepSize: d("0.002")},
		PriceFilter: &domain.PriceFilter{MinPrice: d("0.05"), TickSize: d("0.1")}, // MaxPrice 0: disabled
	}
	rules := domain.RulesFor(domain.RiskProfileLoose)
	for _, tc := range []struct {
		qty, px  string
		lot, px2 bool
	}{
		{"0.003", "100.05", true, true},
		{"0.002", "100.1", false, false},
	} {
		dec := domain.Evaluate(rules, mustOrder(t, "BINANCE", "BTCUSDT", tc.qty, tc.px, "LIMIT"), mustPrice(t, "100"), f, domain.DailyUsage{})
		if c := findCheck(t, dec, "lot_size_step_size"); c.Passed != tc.lot {
			t.Errorf("%+v", c)
		}
		if c := findCheck(t, dec, "price_filter_tick_size"); c.Passed != tc.px2 {
			t.Errorf("%+v", c)
		}
		for _, c := range dec.Checks {
			if c.Name == "price_filter_max_price" {
				t.Errorf("a zero maxPrice is disabled, yet checked: %+v", c)
			}
		}
	}
}

// PRICE_FILTER never applies to MARKET orders; MIN_NOTIONAL and each NOTIONAL
// bound apply to them only when their flag says so.
func TestMarketOrdersFollowBinanceApplyFlags(t *testing.T) {
	rules := domain.RulesFor(domain.RiskProfileLoose)
	ref := mustPrice(t, "10")
	names := func(dec domain.Decision) []string {
		var out []string
		for _, c := range dec.Checks {
			if c.Code == domain.CheckExchangeMinNotional || c.Code == domain.CheckExchangeNotional || c.Code == domain.CheckExchangePriceFilter {
				out = append(out, c.Name)
			}
		}
		return out
	}
	off := domain.SymbolFilters{
		PriceFilter: &domain.PriceFilter{MinPrice: d("0.01"), TickSize: d("0.01")},
		MinNotional: &domain.MinNotionalFilter{MinNotional: d("100")},
		Notional:    &domain.NotionalFilter{MinNotional: d("100"), MaxNotional: d("1")},
	}
	market := domain.Evaluate(rules, mustOrder(t, "BINANCE", "SOLUSDT", "5", "", ""), ref, off, domain.DailyUsage{})
	if got := names(market); len(got) != 0 || !market.Accepted() {
		t.Errorf("MARKET with apply flags off: %v, %s", got, market.Outcome)
	}
	limit := domain.Evaluate(rules, mustOrder(t, "BINANCE", "SOLUSDT", "5", "10", "LIMIT"), ref, off, domain.DailyUsage{})
	if got := names(limit); !slices.Equal(got, []string{"price_filter_min_price", "price_filter_tick_size", "min_notional", "notional_min", "notional_max"}) ||
		!slices.Equal(limit.FailedCodes(), []string{domain.CheckExchangeMinNotional, domain.CheckExchangeNotional}) {
		t.Errorf("LIMIT: %v, failed %v", got, limit.FailedCodes())
	}
	on := off
	on.MinNotional = &domain.MinNotionalFilter{MinNotional: d("100"), ApplyToMarket: true}
	on.Notional = &domain.NotionalFilter{MinNotional: d("50"), ApplyMinToMarket: true, MaxNotional: d("49.99"), ApplyMaxToMarket: true}
	market = domain.Evaluate(rules, mustOrder(t, "BINANCE", "SOLUSDT", "5", "", ""), ref, on, domain.DailyUsage{})
	if got := names(market); !slices.Equal(got, []string{"min_notional", "notional_min", "notional_max"}) {
		t.Errorf("MARKET with apply flags on: %v", got)
	}
	if findCheck(t, market, "min_notional").Passed || !findCheck(t, market, "notional_min").Passed || findCheck(t, market, "notional_max").Passed {
		t.Errorf("MARKET notional 50 against min 100, min 50, max 49.99: %+v", market.Checks)
	}
}

func TestNoExchangeFiltersNoExchangeChecks(t *testing.T) {
	dec := domain.Evaluate(domain.RulesFor(domain.RiskProfileModel2), mustOrder(t, "IBKR", "AAPL", "1", "190", "LIMIT"), mustPrice(t, "190"), domain.SymbolFilters{}, domain.DailyUsage{})
	if len(dec.Checks) != 8 || !dec.Accepted() {
		t.Fatalf("%+v", dec.Checks)
	}
}

// Where the profiles part ways: model2 rejects, loose accepts, and the pair
// is a divergent decision.
func TestModel2RejectsWhereLooseAccepts(t *testing.T) {
	strict, loose := domain.RulesFor(domain.RiskProfileModel2), domain.RulesFor(domain.RiskProfileLoose)
	for _, tc := range []struct {
		name                   string
		exchange, sym, qty, px string
		ref                    string
		usage                  domain.DailyUsage
		code                   string
	}{
		{"symbol", "BINANCE", "SOLUSDT", "1", "", "150", domain.DailyUsage{}, domain.CheckSymbolNotAllowed},
		{"qty", "BINANCE", "BTCUSDT", "0.06", "", "30000", domain.DailyUsage{}, domain.CheckMaxQty},
		{"notional", "BINANCE", "BTCUSDT", "0.04", "", "150000", domain.DailyUsage{}, domain.CheckMaxNotional},
		{"collar", "BINANCE", "BTCUSDT", "0.01", "105000", "100000", domain.DailyUsage{}, domain.CheckPriceCollar},
		{"daily orders", "IBKR", "AAPL", "1", "", "200", domain.DailyUsage{Orders: 60, Notional: d("12000")}, domain.CheckDailyOrderCount},
		{"daily notional", "IBKR", "AAPL", "10", "", "200", domain.DailyUsage{Orders: 10, Notional: d("48500")}, domain.CheckDailyNotional},
	} {
		price, typ := "", ""
		if tc.px != "" {
			price, typ = tc.px, "LIMIT"
		}
		o := mustOrder(t, tc.exchange, tc.sym, tc.qty, price, typ)
		filters := domain.SymbolFilters{}
		if tc.exchange == "BINANCE" {
			filters = btcFilters
		}
		a := domain.Evaluate(strict, o, mustPrice(t, tc.ref), filters, tc.usage)
		b := domain.Evaluate(loose, o, mustPrice(t, tc.ref), filters, tc.usage)
		if a.Accepted() || !slices.Equal(a.FailedCodes(), []string{tc.code}) || !b.Accepted() || !domain.Divergent(a, b) {
			t.Errorf("%s: model2 %s %v, loose %s %v", tc.name, a.Outcome, a.FailedCodes(), b.Outcome, b.FailedCodes())
		}
	}
	same := domain.Evaluate(strict, mustOrder(t, "IBKR", "AAPL", "1", "", ""), mustPrice(t, "200"), domain.SymbolFilters{}, domain.DailyUsage{})
	if domain.Divergent(same, domain.Evaluate(loose, mustOrder(t, "IBKR", "AAPL", "1", "", ""), mustPrice(t, "200"), domain.SymbolFilters{}, domain.DailyUsage{})) {
		t.Error("two acceptances are not divergent")
	}
}

// The usage row advances only on an accepted prepare, and the order after
// the last slot is refused.
func TestDailyUsageAppliesAcceptedDecisionsOnly(t *testing.T) {
	rules := domain.RulesFor(domain.RiskProfileModel2)
	order := mustOrder(t, "IBKR", "AAPL", "0.1", "", "")
	ref := mustPrice(t, "200.2")
	usage := domain.DailyUsage{Orders: 48, Notional: d("100.1")}
	for i := 0; i < 2; i++ {
		dec := domain.Evaluate(rules, order, ref, domain.SymbolFilters{}, usage)
		if !dec.Accepted() {
			t.Fatalf("slot %d: %v", usage.Orders+1, dec.FailedCodes())
		}
		usage = usage.Apply(dec)
	}
	if usage.Orders != 50 || usage.Notional.String() != "140.14" {
		t.Fatalf("usage %+v", usage)
	}
	dec := domain.Evaluate(rules, order, ref, domain.SymbolFilters{}, usage)
	if dec.Accepted() || !slices.Equal(dec.FailedCodes(), []string{domain.CheckDailyOrderCount}) {
		t.Fatalf("51st order: %s %v", dec.Outcome, dec.FailedCodes())
	}
	if after := usage.Apply(dec); after.Orders != usage.Orders || !after.Notional.Equal(usage.Notional) {
		t.Fatalf("a rejected prepare changed the usage: %+v", after)
	}
}

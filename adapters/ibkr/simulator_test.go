package ibkr

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestGrouped(t *testing.T) {
	for _, c := range []struct {
		in     string
		places int32
		want   string
	}{
		{"0", 2, "0.00"},
		{"1", 2, "1.00"},
		{"999.995", 2, "1,000.00"},
		{"2301.5", 2, "2,301.50"},
		{"1234567.891", 2, "1,234,567.89"},
		{"-1234.5", 2, "-1,234.50"},
		{"1000000", 0, "1,000,000"},
		{"-0.4", 0, "0"},
		{"100", 0, "100"},
		{"100000", 0, "100,000"},
	} {
		if got := grouped(dec(c.in), c.places); got != c.want {
			t.Errorf("grouped(%s, %d) = %q, want %q", c.in, c.places, got, c.want)
		}
	}
}

func TestSimulatorPreview(t *testing.T) {
	sim := NewSimulator()
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		order Order
		want  Preview
	}{
		{
			name:  "runbook order: 1 AAPL at market, minimum commission",
			order: Order{Symbol: "AAPL", Side: SideBuy, Quantity: dec("1")},
			want: Preview{
				Conid: "265598", Symbol: "AAPL",
				Amount:      Amount{Amount: "230.00 USD (1 Shares)", Commission: "1.00 USD", Total: "231.00 USD"},
				Equity:      Change{Current: "1,000,000", Change: "-1", After: "999,999"},
				Initial:     Change{Current: "0", Change: "115", After: "115"},
				Maintenance: Change{Current: "0", Change: "58", After: "58"},
				Position:    Change{Current: "0", Change: "1", After: "1"},
			},
		},
		{
			name:  "limit sell uses the limit price; per-share commission above the minimum",
			order: Order{Symbol: "MSFT", Side: SideSell, Type: TypeLimit, Quantity: dec("1000"), Price: dec("419.50")},
			want: Preview{
				Conid: "272093", Symbol: "MSFT",
				Amount:      Amount{Amount: "419,500.00 USD (1000 Shares)", Commission: "5.00 USD", Total: "419,505.00 USD"},
				Equity:      Change{Current: "1,000,000", Change: "-5", After: "999,995"},
				Initial:     Change{Current: "0", Change: "209,750", After: "209,750"},
				Maintenance: Change{Current: "0", Change: "104,875", After: "104,875"},
				Position:    Change{Current: "0", Change: "-1000", After: "-1000"},
			},
		},
		{
			name:  "commission capped at 1% of a small trade value; fractional shares",
			order: Order{Symbol: "SPY", Side: SideBuy, Type: TypeLimit, Quantity: dec("0.1"), Price: dec("599.99")},
			want: Preview{
				Conid: "756733", Symbol: "SPY",
				Amount:      Amount{Amount: "60.00 USD (0.1 Shares)", Commission: "0.60 USD", Total: "60.60 USD"},
				Equity:      Change{Current: "1,000,000", Change: "-1", After: "999,999"},
				Initial:     Change{Current: "0", Change: "30", After: "30"},
				Maintenance: Change{Current: "0", Change: "15", After: "15"},
				Position:    Change{Current: "0", Change: "0.1", After: "0.1"},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := sim.WhatIf(ctx, "DU1234567", c.order)
			if err != nil {
				t.Fatal(err)
			}
			if got.Raw == nil {
				t.Error("Raw is empty")
			}
			again, _ := sim.WhatIf(ctx, "DU7654321", c.order)
			if !reflect.DeepEqual(got, again) {
				t.Errorf("not deterministic:\n%+v\n%+v", got, again)
			}
			got.Raw = nil
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// The simulator's Raw has exactly the gateway's what-if keys, with null
// warn and error, so an audit trail reads the same in both modes.
func TestSimulatorRawShape(t *testing.T) {
	p, err := NewSimulator().WhatIf(context.Background(), "DU1234567", Order{Symbol: "AAPL", Side: SideBuy, Quantity: dec("10")})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p.Raw, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"amount", "equity", "initial", "maintenance", "position", "warn", "error"}
	if len(m) != len(want) {
		t.Errorf("keys %v, want %v", m, want)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %q in %s", k, p.Raw)
		}
	}
	if string(m["warn"]) != "null" || string(m["error"]) != "null" {
		t.Errorf("warn/error = %s/%s, want null/null", m["warn"], m["error"])
	}
	var amount map[string]string
	_ = json.Unmarshal(m["amount"], &amount)
	if amount["amount"] != "2,300.00 USD (10 Shares)" || amount["commission"] != "1.00 USD" || amount["total"] != "2,301.00 USD" {
		t.Errorf("amount = %v", amount)
	}
}

func TestSimulatorMarginRejection(t *testing.T) {
	_, err := NewSimulator().WhatIf(context.Background(), "DU1234567", Order{Symbol: "AAPL", Side: SideBuy, Quantity: dec("10000")})
	var e *Error
	if !errors.As(err, &e) || e.Kind != Rejected || e.Preview == nil {
		t.Fatalf("err = %v, want Rejected with a preview", err)
	}
	want := "Your order is not accepted. In order to obtain the desired position your Equity with Loan Value [999,950.00 USD] must exceed the Initial Margin [1,150,000.00 USD]"
	if e.Message != want || e.Preview.Error != want {
		t.Errorf("message %q, preview error %q", e.Message, e.Preview.Error)
	}
	if e.Preview.Amount.Amount != "2,300,000.00 USD (10000 Shares)" {
		t.Errorf("preview amount %q", e.Preview.Amount.Amount)
	}
	// 8,695 shares still fit in the margin (8,696 do not).
	if _, err := NewSimulator().WhatIf(context.Background(), "DU1234567", Order{Symbol: "AAPL", Side: SideBuy, Quantity: dec("8695")}); err != nil {
		t.Errorf("8695 AAPL: %v", err)
	}
}

func TestSimulatorReferencePrice(t *testing.T) {
	sim := NewSimulator()
	for symbol, want := range map[string]string{"AAPL": "230", "MSFT": "420", "SPY": "600"} {
		got, err := sim.ReferencePrice(context.Background(), symbol)
		if err != nil || !got.Equal(dec(want)) {
			t.Errorf("%s: %v %v, want %s", symbol, got, err, want)
		}
	}
	_, err := sim.ReferencePrice(context.Background(), "ZZZZ")
	if e, ok := asError(err); !ok || e.Kind != NotFound {
		t.Errorf("unknown symbol: %v, want NotFound", err)
	}
	if sim.Mode() != "simulated" {
		t.Errorf("mode %q", sim.Mode())
	}
}

// Invalid input is refused before anything else, with Kind Invalid, by both
// implementations (the gateway's test checks nothing is sent).
func TestSimulatorInvalidInput(t *testing.T) {
	sim := NewSimulator()
	aapl := Order{Symbol: "AAPL", Side: SideBuy, Quantity: dec("1")}
	for name, c := range InvalidCases(aapl) {
		_, err := sim.WhatIf(context.Background(), c.Account, c.Order)
		if e, ok := asError(err); !ok || e.Kind != Invalid {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	_, err := sim.WhatIf(context.Background(), "DU1234567", Order{Symbol: "ZZZZ", Side: SideBuy, Quantity: dec("1")})
	if e, ok := asError(err); !ok || e.Kind != NotFound {
		t.Errorf("unknown symbol: %v, want NotFound", err)
	}
}

// InvalidCase is an account id and order pair the adapter must refuse;
// exported for the gateway's external tests.
type InvalidCase struct {
	Account string
	Order   Order
}

// InvalidCases returns malformed variants of ok, a valid order.
func InvalidCases(ok Order) map[string]InvalidCase {
	with := func(f func(*Order)) Order { o := ok; f(&o); return o }
	return map[string]InvalidCase{
		"empty account":       {"", ok},
		"lower-case account":  {"du1234567", ok},
		"account with slash":  {"DU1/../orders", ok},
		"account too long":    {"DU123456789012345678901234567890X", ok},
		"zero quantity":       {"DU1234567", with(func(o *Order) { o.Quantity = decimal.Zero })},
		"negative quantity":   {"DU1234567", with(func(o *Order) { o.Quantity = dec("-1") })},
		"bad side":            {"DU1234567", with(func(o *Order) { o.Side = "HOLD" })},
		"lower-case side":     {"DU1234567", with(func(o *Order) { o.Side = "buy" })},
		"bad type":            {"DU1234567", with(func(o *Order) { o.Type = "STOP" })},
		"limit without price": {"DU1234567", with(func(o *Order) { o.Type = TypeLimit })},
		"negative limit":      {"DU1234567", with(func(o *Order) { o.Type, o.Price = TypeLimit, dec("-1") })},
		"market with price":   {"DU1234567", with(func(o *Order) { o.Price = dec("230") })},
		"lower-case symbol":   {"DU1234567", with(func(o *Order) { o.Symbol = "aapl" })},
		"symbol with query":   {"DU1234567", with(func(o *Order) { o.Symbol = "AAPL&x=1" })},
		"empty symbol":        {"DU1234567", with(func(o *Order) { o.Symbol = "" })},
	}
}

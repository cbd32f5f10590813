package ibkr

import (
	"context"
	"encoding/json"

	"github.com/shopspring/decimal"
)

// Simulator answers like the gateway without one: fixed prices, IBKR's fixed
// commission schedule and Reg T margin on a $1,000,000 paper account. The
// same order always gets the same Preview, so tests and the release checklist
// can assert on it.
type Simulator struct{}

type instrument struct {
	conid string
	price decimal.Decimal
}

// instruments are the simulator's stocks, with their real IBKR conids.
var instruments = map[string]instrument{
	"AAPL": {conid: "265598", price: decimal.RequireFromString("230.00")},
	"MSFT": {conid: "272093", price: decimal.RequireFromString("420.00")},
	"SPY":  {conid: "756733", price: decimal.RequireFromString("600.00")},
}

var (
	simEquity         = decimal.NewFromInt(1_000_000) // IBKR's default paper account balance
	commissionPerUnit = decimal.RequireFromString("0.005")
	commissionMin     = decimal.RequireFromString("1.00")
	commissionMaxRate = decimal.RequireFromString("0.01") // of the trade value
	initialRate       = decimal.RequireFromString("0.50") // Reg T
	maintenanceRate   = decimal.RequireFromString("0.25")
)

// NewSimulator returns the simulator.
func NewSimulator() *Simulator { return &Simulator{} }

// Mode is "simulated".
func (*Simulator) Mode() string { return "simulated" }

// ReferencePrice returns the simulator's fixed price for symbol.
func (*Simulator) ReferencePrice(_ context.Context, symbol string) (decimal.Decimal, error) {
	in, err := lookup(symbol)
	if err != nil {
		return decimal.Decimal{}, err
	}
	return in.price, nil
}

// WhatIf previews o for accountID. The account id is validated like the
// gateway's but no account is consulted: every account is the same
// simulated $1,000,000 with no positions. An order whose initial margin
// exceeds the equity left is Rejected with the preview, as IBKR does.
func (*Simulator) WhatIf(_ context.Context, accountID string, o Order) (Preview, error) {
	if err := checkAccount(accountID); err != nil {
		return Preview{}, err
	}
	o, err := o.normalize()
	if err != nil {
		return Preview{}, err
	}
	in, err := lookup(o.Symbol)
	if err != nil {
		return Preview{}, err
	}
	price := in.price
	if o.Type == TypeLimit {
		price = o.Price
	}
	value := o.Quantity.Mul(price).Round(2)
	commission := decimal.Min(decimal.Max(o.Quantity.Mul(commissionPerUnit), commissionMin), value.Mul(commissionMaxRate)).Round(2)
	position := o.Quantity
	if o.Side == SideSell {
		position = position.Neg()
	}
	equityAfter := simEquity.Sub(commission)
	initial := value.Mul(initialRate)
	w := wirePreview{
		Amount: Amount{
			Amount:     usd(value) + " (" + o.Quantity.String() + " Shares)",
			Commission: usd(commission),
			Total:      usd(value.Add(commission)),
		},
		Equity:      dollars(simEquity, commission.Neg()),
		Initial:     dollars(decimal.Zero, initial),
		Maintenance: dollars(decimal.Zero, value.Mul(maintenanceRate)),
		Position:    Change{Current: "0", Change: position.String(), After: position.String()},
	}
	if initial.GreaterThan(equityAfter) {
		// IBKR's wording for a margin rejection.
		msg := "Your order is not accepted. In order to obtain the desired position your Equity with Loan Value [" +
			usd(equityAfter) + "] must exceed the Initial Margin [" + usd(initial) + "]"
		w.Error, _ = json.Marshal(msg)
	}
	raw, err := json.Marshal(w)
	if err != nil {
		return Preview{}, err
	}
	p, err := decodePreview(raw, in.conid, o.Symbol)
	if err != nil {
		return Preview{}, err
	}
	if p.Error != "" {
		return Preview{}, &Error{Kind: Rejected, Message: p.Error, Preview: &p}
	}
	return p, nil
}

// dollars formats an equity or margin triple as IBKR does: whole dollars,
// grouped, no currency.
func dollars(current, delta decimal.Decimal) Change {
	return Change{Current: grouped(current, 0), Change: grouped(delta, 0), After: grouped(current.Add(delta), 0)}
}

func lookup(symbol string) (instrument, error) {
	if err := checkSymbol(symbol); err != nil {
		return instrument{}, err
	}
	in, ok := instruments[symbol]
	if !ok {
		return instrument{}, errorf(NotFound, "no IBKR stock contract for %s", symbol)
	}
	return in, nil
}

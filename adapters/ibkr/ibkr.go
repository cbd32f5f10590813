// Package ibkr previews stock orders at Interactive Brokers without placing
// them: Gateway talks to a Client Portal Web API gateway and calls only the
// what-if endpoint; Simulator answers deterministically in the same Preview
// shape when no gateway is configured.
//
// Quantities and prices are decimals end to end (never float64), and every
// failure is an *Error whose Kind says what the caller can conclude.
package ibkr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"
)

// Order sides and types as the rest of tradeops spells them.
const (
	SideBuy    = "BUY"
	SideSell   = "SELL"
	TypeMarket = "MARKET"
	TypeLimit  = "LIMIT"
)

// Order is a stock order to preview. Type "" means MARKET (the API's
// order_type is optional); Price is only for LIMIT orders.
type Order struct {
	Symbol   string
	Side     string
	Type     string
	Quantity decimal.Decimal
	Price    decimal.Decimal
}

// Preview is IBKR's what-if answer for one order: the projected amount,
// commission and changes to equity, margin and position, as the formatted
// strings IBKR returns ("2,301.50 USD (10 Shares)"). A non-empty Error means
// the order would be rejected.
type Preview struct {
	Conid       string `json:"conid"`
	Symbol      string `json:"symbol"`
	Amount      Amount `json:"amount"`
	Equity      Change `json:"equity"`
	Initial     Change `json:"initial"`
	Maintenance Change `json:"maintenance"`
	Position    Change `json:"position"`
	Warn        string `json:"warn"`
	Error       string `json:"error"`
	// Raw is the what-if answer as IBKR sent it (the simulator's answer in the
	// same shape), for the audit trail.
	Raw json.RawMessage `json:"-"`
}

// Amount is the what-if "amount" object.
type Amount struct {
	Amount     string `json:"amount"`
	Commission string `json:"commission"`
	Total      string `json:"total"`
}

// Change is the what-if "equity", "initial", "maintenance" and "position"
// objects.
type Change struct {
	Current string `json:"current"`
	Change  string `json:"change"`
	After   string `json:"after"`
}

// wirePreview is the what-if answer on the wire. warn and error stay raw:
// IBKR sends null, a string, and (per third-party clients) occasionally
// something else, which must not make a rejection unreadable.
type wirePreview struct {
	Amount      Amount          `json:"amount"`
	Equity      Change          `json:"equity"`
	Initial     Change          `json:"initial"`
	Maintenance Change          `json:"maintenance"`
	Position    Change          `json:"position"`
	Warn        json.RawMessage `json:"warn"`
	Error       json.RawMessage `json:"error"`
}

// decodePreview reads a what-if answer; the returned Preview keeps raw.
func decodePreview(raw []byte, conid, symbol string) (Preview, error) {
	var w wirePreview
	if err := json.Unmarshal(raw, &w); err != nil {
		return Preview{}, err
	}
	return Preview{
		Conid: conid, Symbol: symbol,
		Amount: w.Amount, Equity: w.Equity, Initial: w.Initial, Maintenance: w.Maintenance, Position: w.Position,
		Warn: text(w.Warn), Error: text(w.Error),
		Raw: json.RawMessage(bytes.TrimSpace(raw)),
	}, nil
}

// text turns a JSON null or string into its text, and anything else into its
// JSON source.
func text(raw json.RawMessage) string {
	var s *string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == nil {
			return ""
		}
		return strings.TrimSpace(*s)
	}
	return strings.TrimSpace(string(raw))
}

// Kind says what a failure means for the order.
type Kind string

const (
	// Rejected: IBKR answered and refused the order (the what-if "error", or
	// a 4xx with IBKR's message).
	Rejected Kind = "rejected"
	// Unknown: no usable answer (5xx, timeout, unreachable gateway,
	// untrusted certificate, unreadable body); nothing can be concluded.
	Unknown Kind = "unknown"
	// NotAuthenticated: the gateway has no authenticated brokerage session
	// (log in through the gateway's web page).
	NotAuthenticated Kind = "not_authenticated"
	// NotFound: no stock contract for the symbol, or the account is not one
	// of the gateway's accounts.
	NotFound Kind = "not_found"
	// Refused: this adapter refused to ask IBKR (a live account without
	// AllowLive, trading halted).
	Refused Kind = "refused"
	// Invalid: the order or account id is malformed; nothing was sent.
	Invalid Kind = "invalid"
)

// Error is every failure this package returns. Message never contains the
// account id.
type Error struct {
	Kind    Kind
	Message string
	// HTTPStatus is the gateway's status code, 0 when there was no answer.
	HTTPStatus int
	// Preview is the what-if answer of a Rejected order, when there was one.
	Preview *Preview
	// Err is the underlying cause (a TLS or timeout error), if any.
	Err error
}

func (e *Error) Error() string { return "ibkr " + string(e.Kind) + ": " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

var (
	accountPattern = regexp.MustCompile(`^[A-Z0-9]{1,32}$`)
	// IBKR stock symbols: letters and digits, optionally a class after a
	// space or dot ("BRK B").
	symbolPattern = regexp.MustCompile(`^[A-Z0-9]{1,12}(?:[ .][A-Z0-9]{1,6})?$`)
)

func checkAccount(accountID string) error {
	if !accountPattern.MatchString(accountID) {
		return errorf(Invalid, "IBKR account id must be 1 to 32 upper-case letters or digits")
	}
	return nil
}

// isPaper reports whether accountID is a paper-trading account: IBKR's paper
// account ids start with DU.
func isPaper(accountID string) bool { return strings.HasPrefix(accountID, "DU") }

func checkSymbol(symbol string) error {
	if !symbolPattern.MatchString(symbol) {
		return errorf(Invalid, "symbol %q is not an IBKR stock symbol (upper-case letters and digits)", symbol)
	}
	return nil
}

// normalize validates o and fills in the default type.
func (o Order) normalize() (Order, error) {
	if err := checkSymbol(o.Symbol); err != nil {
		return Order{}, err
	}
	if o.Side != SideBuy && o.Side != SideSell {
		return Order{}, errorf(Invalid, "side must be BUY or SELL")
	}
	if o.Type == "" {
		o.Type = TypeMarket
	}
	if !o.Quantity.IsPositive() {
		return Order{}, errorf(Invalid, "quantity must be positive")
	}
	switch o.Type {
	case TypeMarket:
		if !o.Price.IsZero() {
			return Order{}, errorf(Invalid, "a MARKET order takes no price")
		}
	case TypeLimit:
		if !o.Price.IsPositive() {
			return Order{}, errorf(Invalid, "a LIMIT order needs a positive price")
		}
	default:
		return Order{}, errorf(Invalid, "order type must be MARKET or LIMIT")
	}
	return o, nil
}

// asError returns err as an *Error, if it is one.
func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

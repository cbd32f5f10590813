package domain

import (
	"strings"

	"github.com/shopspring/decimal"
)

// Bounds on an order's quantity and price as typed by a caller. Together
// they cap a value at 13 integer and 18 fractional digits (31 significant),
// so every product and sum the risk checks form stays small and exact.
const (
	// maxNumberLength bounds the raw text before anything looks at it: no
	// real quantity or price needs more, and a bounded input keeps parsing
	// cheap whatever a caller sends.
	maxNumberLength = 64
	// maxDecimalPlaces is the finest resolution accepted, counted after
	// dropping trailing zeros ("0.0100" has 2). 18 covers every exchange's
	// step and tick size (Binance uses at most 8).
	maxDecimalPlaces = 18
	// maxExponentDigits bounds the exponent of "1e-7"-style input before it
	// becomes an integer: anything longer is far outside the bounds anyway.
	maxExponentDigits = 4
)

const notANumber = "must be a decimal number such as 0.01 (no spaces, NaN or Infinity)"

// maxMagnitude is the largest quantity or price accepted: 1e12.
var maxMagnitude = decimal.New(1, 12)

// Quantity is an order's quantity: an exact decimal, positive, at most 1e12
// with at most 18 decimal places. The zero Quantity is invalid and only
// appears where a parse failed.
type Quantity struct{ d decimal.Decimal }

// Price is a positive exact decimal price, bounded like Quantity. The zero
// Price stands for "no price" (a MARKET order's limit, a missing reference).
type Price struct{ d decimal.Decimal }

// ParseQuantity parses a quantity from the text of a JSON number token
// (json.Number's string) or a JSON string's content. Both are held to the
// JSON number grammar — no spaces, no sign other than a leading minus, no
// leading zeros, no NaN/Infinity/hex — and an exponent is allowed ("1e-2"
// is what JavaScript prints for small numbers) as long as the value stays
// within the bounds. Errors are KindInvalid with code "invalid_quantity".
func ParseQuantity(raw string) (Quantity, error) {
	d, err := parsePositiveDecimal(raw, "qty", "invalid_quantity")
	return Quantity{d}, err
}

// ParsePrice parses a price like ParseQuantity; code "invalid_price".
func ParsePrice(raw string) (Price, error) {
	d, err := parsePositiveDecimal(raw, "price", "invalid_price")
	return Price{d}, err
}

// Decimal returns the exact value.
func (q Quantity) Decimal() decimal.Decimal { return q.d }

// String is the canonical text: plain notation, no trailing zeros ("1e2" → "100").
func (q Quantity) String() string { return q.d.String() }

// Decimal returns the exact value.
func (p Price) Decimal() decimal.Decimal { return p.d }

// String is the canonical text, or "" for the zero Price.
func (p Price) String() string {
	if p.IsZero() {
		return ""
	}
	return p.d.String()
}

// IsZero reports whether p is "no price".
func (p Price) IsZero() bool { return p.d.IsZero() }

// parsePositiveDecimal checks every bound on the text itself, before the
// decimal library sees it, so that "1e999999999" or a 60,000-digit fraction
// never turns into a huge big.Int.
func parsePositiveDecimal(raw, field, code string) (decimal.Decimal, error) {
	invalid := func(format string, args ...any) (decimal.Decimal, error) {
		return decimal.Decimal{}, Errorf(KindInvalid, code, field+" "+format, args...)
	}
	if raw == "" {
		return invalid("is required")
	}
	if len(raw) > maxNumberLength {
		return invalid("must be at most %d characters", maxNumberLength)
	}
	n, ok := scanNumber(raw)
	if !ok {
		return invalid(notANumber)
	}
	digits := strings.TrimLeft(n.intPart+n.fracPart, "0")
	if n.negative || digits == "" {
		return invalid("must be greater than zero")
	}
	exp := strings.TrimLeft(n.expDigits, "0")
	if len(exp) > maxExponentDigits {
		if n.expNegative {
			return invalid("must have at most %d decimal places", maxDecimalPlaces)
		}
		return invalid("must be at most %s", maxMagnitude)
	}
	e := atoiSmall(exp)
	if n.expNegative {
		e = -e
	}
	// value = digits × 10^-scale; trailing zeros of digits lower the scale.
	scale := len(n.fracPart) - e
	if places := scale - (len(digits) - len(strings.TrimRight(digits, "0"))); places > maxDecimalPlaces {
		return invalid("must have at most %d decimal places", maxDecimalPlaces)
	}
	if intDigits := len(digits) - scale; intDigits > len(maxMagnitude.String()) {
		return invalid("must be at most %s", maxMagnitude)
	}
	d, err := decimal.NewFromString(raw)
	if err != nil {
		return invalid(notANumber)
	}
	if d.GreaterThan(maxMagnitude) {
		return invalid("must be at most %s", maxMagnitude)
	}
	return d, nil
}

// numberParts is a JSON number split into its parts; the digit strings are
// slices of the input.
type numberParts struct {
	negative    bool
	intPart     string
	fracPart    string
	expNegative bool
	expDigits   string
}

// scanNumber matches s against the JSON number grammar (RFC 8259 §6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(s string) (numberParts, bool) {
	var n numberParts
	i := 0
	if i < len(s) && s[i] == '-' {
		n.negative = true
		i++
	}
	start := i
	i = skipDigits(s, i)
	n.intPart = s[start:i]
	if n.intPart == "" || (len(n.intPart) > 1 && n.intPart[0] == '0') {
		return n, false
	}
	if i < len(s) && s[i] == '.' {
		start = i + 1
		i = skipDigits(s, start)
		if n.fracPart = s[start:i]; n.fracPart == "" {
			return n, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			n.expNegative = s[i] == '-'
			i++
		}
		start = i
		i = skipDigits(s, i)
		if n.expDigits = s[start:i]; n.expDigits == "" {
			return n, false
		}
	}
	return n, i == len(s)
}

func skipDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// atoiSmall converts at most maxExponentDigits ASCII digits.
func atoiSmall(s string) int {
	v := 0
	for i := 0; i < len(s); i++ {
		v = v*10 + int(s[i]-'0')
	}
	return v
}

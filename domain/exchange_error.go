package domain

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// ExchangeCode is an exchange's own error code as the API shows it
// ("exchange_code"): Binance's codes are integers (-2015) and render as JSON
// numbers; IBKR's Client Portal API has none, so the adapter's reading of
// its answer ("rejected", "not_authenticated", ...) stands in, as text.
// The zero ExchangeCode is "no code".
type ExchangeCode struct {
	text    string
	numeric bool
}

// NumericExchangeCode is a Binance-style integer code; 0 is no code.
func NumericExchangeCode(n int) ExchangeCode {
	if n == 0 {
		return ExchangeCode{}
	}
	return ExchangeCode{text: strconv.Itoa(n), numeric: true}
}

// TextExchangeCode is a textual code; "" is no code.
func TextExchangeCode(s string) ExchangeCode { return ExchangeCode{text: s} }

// String is the code as text ("-2015"), as events carry it.
func (c ExchangeCode) String() string { return c.text }

func (c ExchangeCode) IsZero() bool { return c.text == "" }

// MarshalJSON writes a numeric code as a JSON number, any other as a string.
func (c ExchangeCode) MarshalJSON() ([]byte, error) {
	if c.numeric {
		return []byte(c.text), nil
	}
	return json.Marshal(c.text)
}

// ExchangeError is an exchange's failed answer to a test order, classified
// once: what the exchange said (Code, Message), what it means for the order
// (Outcome, Retryable), and how the API reports it — an *Error with code
// "<exchange>_rejected" (502), "<exchange>_unknown" (502, or 504 when it did
// not answer in time) or "<exchange>_rate_limited" (503 with Retry-After).
// errors.As finds both the *ExchangeError and its *Error.
type ExchangeError struct {
	Exchange Exchange
	Outcome  TestOrderOutcome
	// Retryable: the exchange did not process the request — it was rate
	// limited, or withheld while the exchange's Retry-After runs — so
	// sending the same order again later cannot duplicate it.
	Retryable bool
	Code      ExchangeCode
	// Message is the exchange's own message, cut to 512 bytes of valid
	// UTF-8. Exchanges never echo credentials; adapters redact identifiers
	// (an IBKR account id) before it gets here.
	Message string
	err     *Error
	cause   error
}

func (e *ExchangeError) Error() string {
	s := e.err.Error()
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap exposes the classification and the cause (for logs).
func (e *ExchangeError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.err}
	}
	return []error{e.err, e.cause}
}

// exchangeNames are the names messages use.
var exchangeNames = map[Exchange]string{ExchangeBinance: "Binance", ExchangeIBKR: "IBKR"}

func newExchangeError(ex Exchange, outcome TestOrderOutcome, code ExchangeCode, message string, cause error, kind Kind, suffix, format string, args ...any) *ExchangeError {
	message = truncateUTF8(message, maxExchangeMessage)
	e := Errorf(kind, strings.ToLower(string(ex))+suffix, format, args...)
	return &ExchangeError{Exchange: ex, Outcome: outcome, Code: code, Message: message, err: e, cause: cause}
}

// ExchangeRejected: the exchange answered and refused the order.
func ExchangeRejected(ex Exchange, code ExchangeCode, message string, cause error) *ExchangeError {
	return newExchangeError(ex, TestOrderRejected, code, message, cause, KindUpstream, "_rejected",
		"%s rejected the test order: %s", exchangeNames[ex], message)
}

// ExchangeUnknown: no verdict — a 5xx, a timeout (timedOut) or a broken
// connection. The order may or may not have been processed, so it is never
// reported as rejected.
func ExchangeUnknown(ex Exchange, code ExchangeCode, message string, timedOut bool, cause error) *ExchangeError {
	kind := KindUpstream
	if timedOut {
		kind = KindUpstreamTimeout
	}
	return newExchangeError(ex, TestOrderUnknown, code, message, cause, kind, "_unknown",
		"no verdict from %s (%s): the outcome of the test order is unknown, not rejected", exchangeNames[ex], message)
}

// ExchangeRateLimited: the exchange refused to process the request for
// now (or it was withheld until the exchange's Retry-After passes).
func ExchangeRateLimited(ex Exchange, code ExchangeCode, message string, retryAfter time.Duration, cause error) *ExchangeError {
	secs := max(int((retryAfter+time.Second-1)/time.Second), 1)
	e := newExchangeError(ex, TestOrderRejected, code, message, cause, KindUnavailable, "_rate_limited",
		"%s is rate limiting this server; nothing was processed, retry after %d s (%s)", exchangeNames[ex], secs, message)
	e.Retryable = true
	e.err.RetryAfterSeconds = secs
	return e
}

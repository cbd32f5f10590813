package binance

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Outcome says what is known about a request that did not succeed.
type Outcome string

const (
	// OutcomeRejected: Binance answered and refused the request (4xx).
	OutcomeRejected Outcome = "rejected"
	// OutcomeUnknown: no verdict — a 5xx, a timeout or a transport failure.
	// Binance documents a 5xx as "execution status unknown", so it must never
	// be reported as a rejection.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeRateLimited: 429 (back off or be banned) or 418 (IP banned), or
	// a request this client did not send because Binance's Retry-After has
	// not passed yet.
	OutcomeRateLimited Outcome = "rate_limited"
)

// Binance error codes the callers and this package act on.
const (
	CodeTimestampOutsideWindow = -1021
	CodeInvalidSignature       = -1022
	CodeFilterFailure          = -1013
	CodeInvalidSymbol          = -1121
	CodeAPIKeyFormat           = -2014
	CodeRejectedAPIKey         = -2015
)

var (
	// ErrInvalidSymbol matches (errors.Is) an *APIError with code -1121.
	ErrInvalidSymbol = errors.New("binance: invalid symbol")
	// ErrInvalidOrder: the order is malformed; nothing was sent.
	ErrInvalidOrder = errors.New("binance: invalid order")
	// ErrInvalidCredentials: the key or secret is missing or unusable;
	// nothing was sent.
	ErrInvalidCredentials = errors.New("binance: invalid credentials")
)

// APIError is every failure of a request that was sent, or withheld because
// of a pending Retry-After. It never carries the secret or the signature:
// Message is Binance's "msg" (or a description of the transport failure) and
// the request's parameters travel in the body, which no error quotes.
type APIError struct {
	HTTPStatus int    // 0 when no HTTP response arrived
	Code       int    // Binance's "code"; 0 when the body carried none
	Message    string // Binance's "msg", or what went wrong locally
	RetryAfter time.Duration
	Outcome    Outcome
	// NotSent is true when the client withheld the request (Retry-After
	// pending): Binance never saw it.
	NotSent bool
	cause   error
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("binance: ")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d: ", e.HTTPStatus)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, "code %d: ", e.Code)
	}
	b.WriteString(e.Message)
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	b.WriteString(" [outcome ")
	b.WriteString(string(e.Outcome))
	b.WriteString("]")
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.cause }

// Is makes errors.Is(err, ErrInvalidSymbol) work on Binance's -1121.
func (e *APIError) Is(target error) bool {
	return target == ErrInvalidSymbol && e.Code == CodeInvalidSymbol
}

// maxMessage bounds what a non-Binance body (a WAF or proxy page) can put
// into an error.
const maxMessage = 256

// classify turns a non-2xx response into an *APIError.
func classify(status int, header http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{HTTPStatus: status, Outcome: OutcomeRejected}
	var b struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(body, &b); err == nil && b.Code != 0 {
		e.Code, e.Message = b.Code, b.Msg
	} else {
		e.Message = http.StatusText(status)
	}
	if len(e.Message) > maxMessage {
		e.Message = e.Message[:maxMessage]
	}
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusTeapot:
		e.Outcome = OutcomeRateLimited
		e.RetryAfter = retryAfter(header.Get("Retry-After"), now)
	case status >= 500:
		e.Outcome = OutcomeUnknown
	}
	return e
}

// defaultRetryAfter applies when a 429/418 arrives without Retry-After (a
// proxy, not Binance): Binance's request-weight window is one minute.
const defaultRetryAfter = time.Minute

// retryAfter parses Retry-After: Binance sends seconds; an HTTP date is
// accepted too.
func retryAfter(v string, now time.Time) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return defaultRetryAfter
}

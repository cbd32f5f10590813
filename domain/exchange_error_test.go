package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
)

func TestExchangeCodeJSON(t *testing.T) {
	for _, c := range []struct {
		code domain.ExchangeCode
		want string
	}{
		{domain.NumericExchangeCode(-2015), `-2015`},
		{domain.TextExchangeCode("not_authenticated"), `"not_authenticated"`},
	} {
		got, err := json.Marshal(c.code)
		if err != nil || string(got) != c.want {
			t.Errorf("%v: %s %v, want %s", c.code, got, err, c.want)
		}
	}
	if !domain.NumericExchangeCode(0).IsZero() || !domain.TextExchangeCode("").IsZero() {
		t.Error("a zero code is not zero")
	}
}

func TestExchangeErrorClassification(t *testing.T) {
	cause := errors.New("HTTP 401")
	for _, c := range []struct {
		err        *domain.ExchangeError
		kind       domain.Kind
		code       string
		outcome    domain.TestOrderOutcome
		retryable  bool
		retryAfter int
		message    string
	}{
		{domain.ExchangeRejected(domain.ExchangeBinance, domain.NumericExchangeCode(-2015), "Invalid API-key, IP, or permissions for action.", cause),
			domain.KindUpstream, "binance_rejected", domain.TestOrderRejected, false, 0, "Binance rejected the test order: Invalid API-key"},
		{domain.ExchangeUnknown(domain.ExchangeBinance, domain.NumericExchangeCode(-1001), "Internal error", false, nil),
			domain.KindUpstream, "binance_unknown", domain.TestOrderUnknown, false, 0, "unknown, not rejected"},
		{domain.ExchangeUnknown(domain.ExchangeIBKR, domain.ExchangeCode{}, "timeout", true, nil),
			domain.KindUpstreamTimeout, "ibkr_unknown", domain.TestOrderUnknown, false, 0, "no verdict from IBKR"},
		{domain.ExchangeRateLimited(domain.ExchangeBinance, domain.NumericExchangeCode(-1003), "Too much request weight used", 1500*time.Millisecond, nil),
			domain.KindUnavailable, "binance_rate_limited", domain.TestOrderRejected, true, 2, "retry after 2 s"},
	} {
		var e *domain.Error
		if !errors.As(c.err, &e) || e.Kind != c.kind || e.Code != c.code || e.RetryAfterSeconds != c.retryAfter || !strings.Contains(e.Message, c.message) {
			t.Errorf("%v: classified as %+v", c.err, e)
		}
		var xe *domain.ExchangeError
		if !errors.As(error(c.err), &xe) || xe.Outcome != c.outcome || xe.Retryable != c.retryable {
			t.Errorf("%v: %+v", c.err, xe)
		}
		if domain.ErrorKind(c.err) != c.kind {
			t.Errorf("ErrorKind(%v) = %s", c.err, domain.ErrorKind(c.err))
		}
	}
	if e := domain.ExchangeRejected(domain.ExchangeBinance, domain.ExchangeCode{}, "x", cause); !errors.Is(e, cause) {
		t.Error("the cause is not in the chain")
	}
}

func TestExchangeErrorMessageIsBounded(t *testing.T) {
	e := domain.ExchangeRejected(domain.ExchangeIBKR, domain.TextExchangeCode("rejected"), strings.Repeat("é", 600)+"\xff", nil)
	if len(e.Message) > 512 || !strings.HasPrefix(e.Message, "éé") {
		t.Errorf("message of %d bytes", len(e.Message))
	}
}

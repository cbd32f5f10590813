package binance_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tradeops/tradeops/adapters/binance"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/internal/fakebinance"
)

func portOrder(t *testing.T, symbol, qty, price, typ string) domain.OrderRequest {
	t.Helper()
	o, err := domain.NewOrderRequest("BINANCE", symbol, "BUY", qty, price, typ)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func portCreds(t *testing.T, key, secret string) domain.ExchangeCredentials {
	t.Helper()
	c, err := domain.NewExchangeCredentials(domain.ExchangeBinance, map[string]domain.Secret{
		domain.FieldAPIKey: domain.NewSecret(key), domain.FieldAPISecret: domain.NewSecret(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The port hands the domain exchangeInfo's filters and the ticker price as
// exact decimals, and test orders' answers.
func TestExchangePortMarketData(t *testing.T) {
	e := setup(t, binance.Config{})
	x := binance.NewExchange(e.c, false)
	if x.Mode() != domain.TestOrderModeTestnet || binance.NewExchange(e.c, true).Mode() != domain.TestOrderModeLive {
		t.Fatal("modes")
	}
	p, err := x.ReferencePrice(context.Background(), "BTCUSDT")
	if err != nil || p.String() != "95000" {
		t.Fatalf("price %v %v", p, err)
	}
	f, err := x.SymbolFilters(context.Background(), "BTCUSDT")
	if err != nil {
		t.Fatal(err)
	}
	if f.LotSize.StepSize.String() != "0.00001" || f.PriceFilter.TickSize.String() != "0.01" || f.Notional.MinNotional.String() != "5" ||
		!f.Notional.ApplyMinToMarket || f.Notional.ApplyMaxToMarket || f.MinNotional != nil {
		t.Fatalf("filters %+v %+v %+v", f.LotSize, f.PriceFilter, f.Notional)
	}
	for _, sym := range []string{"DOGEUSDT"} {
		if _, err := x.SymbolFilters(context.Background(), sym); !hasCode(err, "unknown_symbol", domain.KindInvalid) {
			t.Fatalf("%s filters: %v", sym, err)
		}
		if _, err := x.ReferencePrice(context.Background(), sym); !hasCode(err, "unknown_symbol", domain.KindInvalid) {
			t.Fatalf("%s price: %v", sym, err)
		}
	}
	raw, err := x.TestOrder(context.Background(), portCreds(t, apiKey, apiSecret), portOrder(t, "BTCUSDT", "0.01", "", ""))
	if err != nil || string(raw) != "{}" {
		t.Fatalf("test order %s %v", raw, err)
	}
}

func TestExchangePortMinNotional(t *testing.T) {
	sym := fakebinance.Symbol{Symbol: "LTCBTC", BaseAsset: "LTC", QuoteAsset: "BTC", BasePrecision: 8, QuotePrecision: 8, Price: "0.001",
		Filters: []fakebinance.Filter{{Type: "MIN_NOTIONAL", Min: "0.0001", ApplyMin: true}}}
	fake := fakebinance.New(fakebinance.Options{T: t, Symbols: []fakebinance.Symbol{sym}})
	c, err := binance.New(binance.Config{BaseURL: fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := binance.NewExchange(c, false).SymbolFilters(context.Background(), "LTCBTC")
	if err != nil || f.Notional != nil || f.MinNotional == nil || f.MinNotional.MinNotional.String() != "0.0001" || !f.MinNotional.ApplyToMarket {
		t.Fatalf("%+v %v", f, err)
	}
}

// Test order failures become classified domain errors: Binance's
// rejections (502 binance_rejected with its code), 5xx and timeouts
// (binance_unknown, 502 and 504), rate limits (503 binance_rate_limited,
// retryable), and secrets that cannot sign (nothing sent).
func TestExchangePortErrors(t *testing.T) {
	e := setup(t, binance.Config{Timeout: 200 * time.Millisecond})
	x := binance.NewExchange(e.c, false)
	order := portOrder(t, "BTCUSDT", "0.01", "", "")
	send := func(creds domain.ExchangeCredentials) error {
		_, err := x.TestOrder(context.Background(), creds, order)
		return err
	}
	exchangeErr := func(err error) *domain.ExchangeError {
		t.Helper()
		var xe *domain.ExchangeError
		if !errors.As(err, &xe) {
			t.Fatalf("not an exchange error: %v", err)
		}
		return xe
	}

	err := send(portCreds(t, "unknownKey0123456789unknownKey0123456789unknownKey0123456789abcd", apiSecret))
	if xe := exchangeErr(err); !hasCode(err, "binance_rejected", domain.KindUpstream) || xe.Code.String() != "-2015" || xe.Outcome != domain.TestOrderRejected || xe.Retryable {
		t.Fatalf("-2015: %v", err)
	}

	e.fake.SetFault(http.StatusBadGateway, 0)
	err = send(portCreds(t, apiKey, apiSecret))
	if xe := exchangeErr(err); !hasCode(err, "binance_unknown", domain.KindUpstream) || xe.Outcome != domain.TestOrderUnknown {
		t.Fatalf("5xx: %v", err)
	}
	e.fake.ClearFault()

	e.fake.SetLatency(time.Second)
	err = send(portCreds(t, apiKey, apiSecret))
	if xe := exchangeErr(err); !hasCode(err, "binance_unknown", domain.KindUpstreamTimeout) || xe.Outcome != domain.TestOrderUnknown {
		t.Fatalf("timeout: %v", err)
	}
	e.fake.SetLatency(0)

	e.fake.SetFault(http.StatusTeapot, 30*time.Second)
	err = send(portCreds(t, apiKey, apiSecret))
	var de *domain.Error
	if xe := exchangeErr(err); !hasCode(err, "binance_rate_limited", domain.KindUnavailable) || !xe.Retryable || !errors.As(err, &de) || de.RetryAfterSeconds != 30 {
		t.Fatalf("418: %v", err)
	}
	// Withheld while Retry-After runs: market data too.
	if _, err := x.SymbolFilters(context.Background(), "ETHUSDT"); !hasCode(err, "binance_rate_limited", domain.KindUnavailable) {
		t.Fatalf("market data during a ban: %v", err)
	}
	e.fake.ClearFault()

	// An RSA key cannot sign: refused before sending, not an exchange error.
	rsa := "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n"
	err = send(portCreds(t, apiKey, rsa))
	if !hasCode(err, "secret_unusable", domain.KindConflict) || errors.As(err, new(*domain.ExchangeError)) {
		t.Fatalf("RSA: %v", err)
	}
}

func hasCode(err error, code string, kind domain.Kind) bool {
	var e *domain.Error
	return errors.As(err, &e) && e.Code == code && e.Kind == kind
}

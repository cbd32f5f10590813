package ibkr_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/adapters/ibkr"
	"github.com/tradeops/tradeops/internal/fakeibkr"
)

// bridge is what the application uses; both implementations provide it.
type bridge interface {
	Mode() string
	ReferencePrice(ctx context.Context, symbol string) (decimal.Decimal, error)
	WhatIf(ctx context.Context, accountID string, o ibkr.Order) (ibkr.Preview, error)
}

var (
	_ bridge = (*ibkr.Gateway)(nil)
	_ bridge = (*ibkr.Simulator)(nil)
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

var buyAAPL = ibkr.Order{Symbol: "AAPL", Side: ibkr.SideBuy, Type: ibkr.TypeMarket, Quantity: dec("1")}

func newGateway(t *testing.T, cfg ibkr.Config) *ibkr.Gateway {
	t.Helper()
	g, err := ibkr.NewGateway(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// wantKind fails unless err is an *ibkr.Error of kind.
func wantKind(t *testing.T, err error, kind ibkr.Kind) *ibkr.Error {
	t.Helper()
	var e *ibkr.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *ibkr.Error %s", err, err, kind)
	}
	if e.Kind != kind {
		t.Fatalf("kind = %s (%v), want %s", e.Kind, e, kind)
	}
	return e
}

func TestWhatIfOverTLS(t *testing.T) {
	fake := fakeibkr.StartTLS(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL(), InsecureTLS: true})
	if gw.Mode() != "paper" {
		t.Errorf("mode %q", gw.Mode())
	}
	p, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	if err != nil {
		t.Fatal(err)
	}
	if p.Conid != "265598" || p.Symbol != "AAPL" || p.Amount != (ibkr.Amount{Amount: "230.00 USD (1 Shares)", Commission: "1.00 USD", Total: "231.00 USD"}) ||
		p.Equity != (ibkr.Change{Current: "1,000,000", Change: "-1", After: "999,999"}) || p.Warn != "" || p.Error != "" {
		t.Errorf("preview %+v", p)
	}
	if !strings.Contains(string(p.Raw), `"warn":null`) {
		t.Errorf("raw %s", p.Raw)
	}
	// Exactly what IBKR documents: a numeric conid, MKT, DAY, no price.
	if got, want := string(fake.LastWhatIf()), `{"orders":[{"conid":265598,"orderType":"MKT","side":"BUY","quantity":1,"tif":"DAY"}]}`; got != want {
		t.Errorf("what-if body\n got %s\nwant %s", got, want)
	}
	for route, want := range map[fakeibkr.Route]int{fakeibkr.AuthStatus: 1, fakeibkr.Accounts: 1, fakeibkr.Search: 1, fakeibkr.WhatIf: 1, fakeibkr.PlaceOrder: 0} {
		if got := fake.Calls(route); got != want {
			t.Errorf("%s called %d times, want %d", route, got, want)
		}
	}
}

// Quantities and prices go out as the exact decimals given, never through
// float64.
func TestWhatIfSendsExactDecimals(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	o := ibkr.Order{Symbol: "MSFT", Side: ibkr.SideSell, Type: ibkr.TypeLimit, Quantity: dec("0.3"), Price: dec("419.9999999999999999")}
	p, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(fake.LastWhatIf()), `{"orders":[{"conid":272093,"orderType":"LMT","side":"SELL","quantity":0.3,"tif":"DAY","price":419.9999999999999999}]}`; got != want {
		t.Errorf("what-if body\n got %s\nwant %s", got, want)
	}
	if p.Amount.Amount != "126.00 USD (0.3 Shares)" {
		t.Errorf("amount %q", p.Amount.Amount)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	fake := fakeibkr.StartTLS(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	_, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	e := wantKind(t, err, ibkr.Unknown)
	var certErr *tls.CertificateVerificationError
	if !errors.As(err, &certErr) {
		t.Errorf("cause %v, want a certificate verification error", e.Err)
	}
	if !strings.Contains(e.Message, "certificate is not trusted") || !strings.Contains(e.Message, "IBKR_BRIDGE_INSECURE_TLS") {
		t.Errorf("message %q", e.Message)
	}
	if n := fake.TotalCalls(); n != 0 {
		t.Errorf("%d requests reached the gateway", n)
	}
}

func TestNotAuthenticated(t *testing.T) {
	for name, c := range map[string]struct {
		state fakeibkr.AuthState
		kind  ibkr.Kind
	}{
		"not authenticated": {fakeibkr.AuthState{Connected: true}, ibkr.NotAuthenticated},
		"competing session": {fakeibkr.AuthState{Authenticated: true, Competing: true, Connected: true}, ibkr.NotAuthenticated},
		"not connected":     {fakeibkr.AuthState{}, ibkr.Unknown},
	} {
		t.Run(name, func(t *testing.T) {
			fake := fakeibkr.Start(t)
			fake.SetAuth(c.state)
			gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
			_, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
			wantKind(t, err, c.kind)
			_, err = gw.ReferencePrice(context.Background(), "AAPL")
			wantKind(t, err, c.kind)
			if n := fake.Calls(fakeibkr.WhatIf) + fake.Calls(fakeibkr.Snapshot); n != 0 {
				t.Errorf("%d order/market data requests without a session", n)
			}
		})
	}
	t.Run("401 from the what-if", func(t *testing.T) {
		fake := fakeibkr.Start(t)
		fake.Fail(fakeibkr.WhatIf, http.StatusUnauthorized)
		gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
		_, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
		if e := wantKind(t, err, ibkr.NotAuthenticated); e.HTTPStatus != http.StatusUnauthorized {
			t.Errorf("status %d", e.HTTPStatus)
		}
	})
}

func TestRejected(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	const msg = "This order will most likely trigger and fill immediately."
	fake.RejectWhatIf(msg)
	_, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	e := wantKind(t, err, ibkr.Rejected)
	if e.Message != msg || e.Preview == nil || e.Preview.Error != msg || e.Preview.Amount.Total != "231.00 USD" || e.HTTPStatus != http.StatusOK {
		t.Errorf("error %+v, preview %+v", e, e.Preview)
	}

	// The gateway's own margin check (the simulator behind the fake).
	fake.RejectWhatIf("")
	_, err = gw.WhatIf(context.Background(), fakeibkr.PaperAccount, ibkr.Order{Symbol: "AAPL", Side: ibkr.SideBuy, Quantity: dec("100000")})
	if e := wantKind(t, err, ibkr.Rejected); !strings.Contains(e.Message, "Initial Margin") {
		t.Errorf("message %q", e.Message)
	}

	// A 400 with IBKR's error body.
	fake.AnswerWhatIf(http.StatusBadRequest, `{"error":"Order size exceeds the maximum","statusCode":400}`)
	_, err = gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	if e := wantKind(t, err, ibkr.Rejected); e.Message != "Order size exceeds the maximum" || e.HTTPStatus != http.StatusBadRequest || e.Preview != nil {
		t.Errorf("error %+v", e)
	}
}

// IBKR's documented answer shape, verbatim, with a warning and with errors
// that are empty or not strings.
func TestWhatIfAnswerShapes(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	const base = `"amount":{"amount":"1,977.60 USD (10 Shares)","commission":"1 USD","total":"1,978.60 USD"},` +
		`"equity":{"current":"1,257,657","change":"-1","after":"1,257,656"},"initial":{"current":"0","change":"989","after":"989"},` +
		`"maintenance":{"current":"0","change":"494","after":"494"},"position":{"current":"0","change":"10","after":"10"}`

	fake.AnswerWhatIf(http.StatusOK, `{`+base+`,"warn":"21/Market data is delayed","error":""}`)
	p, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	if err != nil {
		t.Fatal(err)
	}
	if p.Amount.Amount != "1,977.60 USD (10 Shares)" || p.Initial.After != "989" || p.Position.Change != "10" || p.Warn != "21/Market data is delayed" {
		t.Errorf("preview %+v", p)
	}

	fake.AnswerWhatIf(http.StatusOK, `{`+base+`,"warn":null,"error":{"code":201,"text":"rejected"}}`)
	_, err = gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	if e := wantKind(t, err, ibkr.Rejected); e.Message != `{"code":201,"text":"rejected"}` {
		t.Errorf("message %q", e.Message)
	}

	fake.AnswerWhatIf(http.StatusOK, `<html>login</html>`)
	_, err = gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	wantKind(t, err, ibkr.Unknown)
}

func TestUnknownSymbol(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	for _, symbol := range []string{"ZZZZ", "ES"} { // no such symbol; futures only
		_, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, ibkr.Order{Symbol: symbol, Side: ibkr.SideBuy, Quantity: dec("1")})
		wantKind(t, err, ibkr.NotFound)
		_, err = gw.ReferencePrice(context.Background(), symbol)
		wantKind(t, err, ibkr.NotFound)
	}
	if n := fake.Calls(fakeibkr.WhatIf) + fake.Calls(fakeibkr.Snapshot); n != 0 {
		t.Errorf("%d what-if/snapshot requests for unknown symbols", n)
	}
}

func TestLiveAccount(t *testing.T) {
	const live = "U7654321"
	fake := fakeibkr.Start(t)
	fake.SetAccounts(fakeibkr.PaperAccount, live)

	_, err := newGateway(t, ibkr.Config{BaseURL: fake.URL()}).WhatIf(context.Background(), live, buyAAPL)
	wantKind(t, err, ibkr.Refused)
	if n := fake.TotalCalls(); n != 0 {
		t.Errorf("%d requests for a refused live account", n)
	}

	if _, err := newGateway(t, ibkr.Config{BaseURL: fake.URL(), AllowLive: true}).WhatIf(context.Background(), live, buyAAPL); err != nil {
		t.Errorf("live with AllowLive: %v", err)
	}
}

func TestAccountNotOnGateway(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	_, err := gw.WhatIf(context.Background(), "DU7777777", buyAAPL)
	if e := wantKind(t, err, ibkr.NotFound); strings.Contains(e.Error(), "DU7777777") {
		t.Errorf("error names the account: %v", e)
	}
	if n := fake.Calls(fakeibkr.WhatIf); n != 0 {
		t.Errorf("%d what-if requests", n)
	}
}

// The account id comes from the user's secret: a gateway message naming it
// is redacted.
func TestGatewayMessageRedactsAccount(t *testing.T) {
	fake := fakeibkr.Start(t)
	fake.AnswerWhatIf(http.StatusInternalServerError, `{"error":"Account `+fakeibkr.PaperAccount+` is not enabled for trading","statusCode":500}`)
	_, err := newGateway(t, ibkr.Config{BaseURL: fake.URL()}).WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	e := wantKind(t, err, ibkr.Unknown)
	if strings.Contains(e.Error(), fakeibkr.PaperAccount) || !strings.Contains(e.Message, "Account [account] is not enabled") {
		t.Errorf("message %q", e.Message)
	}
}

func TestUnavailable(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
		fake := fakeibkr.Start(t)
		fake.Fail(fakeibkr.WhatIf, status)
		_, err := newGateway(t, ibkr.Config{BaseURL: fake.URL()}).WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
		if e := wantKind(t, err, ibkr.Unknown); e.HTTPStatus != status {
			t.Errorf("status %d, want %d", e.HTTPStatus, status)
		}
	}

	fake := fakeibkr.Start(t)
	fake.Fail(fakeibkr.AuthStatus, http.StatusServiceUnavailable)
	_, err := newGateway(t, ibkr.Config{BaseURL: fake.URL()}).WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	wantKind(t, err, ibkr.Unknown)

	t.Run("timeout", func(t *testing.T) {
		fake := fakeibkr.Start(t)
		fake.Delay(fakeibkr.WhatIf, 5*time.Second)
		gw := newGateway(t, ibkr.Config{BaseURL: fake.URL(), Timeout: 100 * time.Millisecond})
		start := time.Now()
		_, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
		if e := wantKind(t, err, ibkr.Unknown); !strings.Contains(e.Message, "did not answer in time") {
			t.Errorf("message %q", e.Message)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("context deadline", func(t *testing.T) {
		fake := fakeibkr.Start(t)
		fake.Delay(fakeibkr.WhatIf, 5*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := newGateway(t, ibkr.Config{BaseURL: fake.URL()}).WhatIf(ctx, fakeibkr.PaperAccount, buyAAPL)
		wantKind(t, err, ibkr.Unknown)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v does not wrap the deadline", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/v1/api"
		srv.Close()
		_, err := newGateway(t, ibkr.Config{BaseURL: url}).WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
		if e := wantKind(t, err, ibkr.Unknown); !strings.Contains(e.Message, "unreachable") || strings.Contains(e.Message, fakeibkr.PaperAccount) {
			t.Errorf("message %q", e.Message)
		}
	})
}

func TestConidCache(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	ctx := context.Background()
	for range 3 {
		if _, err := gw.WhatIf(ctx, fakeibkr.PaperAccount, buyAAPL); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := gw.ReferencePrice(ctx, "AAPL"); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.WhatIf(ctx, fakeibkr.PaperAccount, ibkr.Order{Symbol: "MSFT", Side: ibkr.SideBuy, Quantity: dec("1")}); err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls(fakeibkr.Search); n != 2 {
		t.Errorf("secdef search called %d times, want 2 (AAPL, MSFT once each)", n)
	}
}

func TestReferencePrice(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	ctx := context.Background()
	got, err := gw.ReferencePrice(ctx, "AAPL")
	if err != nil || !got.Equal(dec("230")) {
		t.Fatalf("AAPL: %v %v", got, err)
	}
	// The first snapshot only subscribes, like the real gateway.
	if n := fake.Calls(fakeibkr.Snapshot); n != 2 {
		t.Errorf("snapshot called %d times, want 2", n)
	}
	for field31, want := range map[string]string{"231.15": "231.15", "C229.10": "229.10", "1,234.50": "1234.50"} {
		fake.SetLastPrice("AAPL", field31)
		if got, err := gw.ReferencePrice(ctx, "AAPL"); err != nil || !got.Equal(dec(want)) {
			t.Errorf("field 31 %q: %v %v, want %s", field31, got, err, want)
		}
	}
	fake.SetLastPrice("AAPL", "H230.00")
	_, err = gw.ReferencePrice(ctx, "AAPL")
	if e := wantKind(t, err, ibkr.Refused); !strings.Contains(e.Message, "halted") {
		t.Errorf("message %q", e.Message)
	}
	for _, bad := range []string{"", "N/A", "0", "-1"} {
		fake.SetLastPrice("AAPL", bad)
		_, err = gw.ReferencePrice(ctx, "AAPL")
		wantKind(t, err, ibkr.Unknown)
	}
}

func TestInvalidInputSendsNothing(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL(), AllowLive: true})
	for name, c := range ibkr.InvalidCases(buyAAPL) {
		_, err := gw.WhatIf(context.Background(), c.Account, c.Order)
		var e *ibkr.Error
		if !errors.As(err, &e) || e.Kind != ibkr.Invalid {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	_, err := gw.ReferencePrice(context.Background(), "aapl")
	wantKind(t, err, ibkr.Invalid)
	if n := fake.TotalCalls(); n != 0 {
		t.Errorf("%d requests for invalid input", n)
	}
}

func TestNewGatewayRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:5000", "ftp://localhost/v1/api", "https://", "https://localhost:5000/v1/api?x=1"} {
		if _, err := ibkr.NewGateway(ibkr.Config{BaseURL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// A redirect is never followed: a 307 repeats the POST, and could repeat it
// to the order-placing endpoint.
func TestRedirectNotFollowed(t *testing.T) {
	fake := fakeibkr.New()
	mux := http.NewServeMux()
	mux.Handle("/", fake)
	mux.HandleFunc("POST /v1/api/iserver/account/{id}/orders/whatif", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/v1/api/iserver/account/"+r.PathValue("id")+"/orders", http.StatusTemporaryRedirect)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, err := newGateway(t, ibkr.Config{BaseURL: srv.URL + "/v1/api"}).WhatIf(context.Background(), fakeibkr.PaperAccount, buyAAPL)
	if e := wantKind(t, err, ibkr.Unknown); e.HTTPStatus != http.StatusTemporaryRedirect {
		t.Errorf("status %d", e.HTTPStatus)
	}
	if n := fake.Calls(fakeibkr.PlaceOrder); n != 0 {
		t.Errorf("order endpoint called %d times", n)
	}
}

func TestTickle(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	if err := gw.Tickle(context.Background()); err != nil {
		t.Fatal(err)
	}
	fake.SetAuth(fakeibkr.AuthState{Connected: true})
	wantKind(t, gw.Tickle(context.Background()), ibkr.NotAuthenticated)
	fake.Fail(fakeibkr.Tickle, http.StatusUnauthorized)
	wantKind(t, gw.Tickle(context.Background()), ibkr.NotAuthenticated)
	if n := fake.Calls(fakeibkr.Tickle); n != 3 {
		t.Errorf("tickle called %d times", n)
	}
}

// The gateway and the simulator answer the same order with the same
// Preview, and the same raw shape.
func TestGatewayAndSimulatorAgree(t *testing.T) {
	fake := fakeibkr.Start(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL()})
	sim := ibkr.NewSimulator()
	ctx := context.Background()
	for _, o := range []ibkr.Order{
		buyAAPL,
		{Symbol: "MSFT", Side: ibkr.SideSell, Type: ibkr.TypeLimit, Quantity: dec("12.5"), Price: dec("421.37")},
		{Symbol: "SPY", Side: ibkr.SideBuy, Quantity: dec("1000")},
	} {
		g, err := gw.WhatIf(ctx, fakeibkr.PaperAccount, o)
		if err != nil {
			t.Fatal(err)
		}
		s, err := sim.WhatIf(ctx, fakeibkr.PaperAccount, o)
		if err != nil {
			t.Fatal(err)
		}
		var graw, sraw any
		if json.Unmarshal(g.Raw, &graw) != nil || json.Unmarshal(s.Raw, &sraw) != nil || !reflect.DeepEqual(graw, sraw) {
			t.Errorf("raw differs:\n%s\n%s", g.Raw, s.Raw)
		}
		g.Raw, s.Raw = nil, nil
		if !reflect.DeepEqual(g, s) {
			t.Errorf("gateway %+v\nsimulator %+v", g, s)
		}
		gp, err1 := gw.ReferencePrice(ctx, o.Symbol)
		sp, err2 := sim.ReferencePrice(ctx, o.Symbol)
		if err1 != nil || err2 != nil || !gp.Equal(sp) {
			t.Errorf("%s price: gateway %v %v, simulator %v %v", o.Symbol, gp, err1, sp, err2)
		}
	}
}

func TestConcurrentWhatIf(t *testing.T) {
	fake := fakeibkr.StartTLS(t)
	gw := newGateway(t, ibkr.Config{BaseURL: fake.URL(), InsecureTLS: true})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := buyAAPL
			if i%2 == 1 {
				o.Symbol = "MSFT"
			}
			_, err := gw.WhatIf(context.Background(), fakeibkr.PaperAccount, o)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := fake.Calls(fakeibkr.WhatIf); n != 20 {
		t.Errorf("what-if called %d times", n)
	}
}

package binance_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/adapters/binance"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/internal/fakebinance"
)

const (
	apiKey    = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
	apiSecret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
)

var hmacCreds = binance.Credentials{APIKey: domain.NewSecret(apiKey), Secret: domain.NewSecret(apiSecret)}

// clock is the client's clock: real time moved by an adjustable offset, so
// tests can step past Retry-After and cache TTLs.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// recorder keeps every request body the client sends, so tests can check
// that no error quotes the signature.
type recorder struct {
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) signatures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		if v, err := url.ParseQuery(b); err == nil && v.Get("signature") != "" {
			out = append(out, v.Get("signature"), url.QueryEscape(v.Get("signature")))
		}
	}
	return out
}

type env struct {
	fake  *fakebinance.Server
	c     *binance.Client
	clock *clock
	rec   *recorder
}

func setup(t *testing.T, cfg binance.Config) env {
	t.Helper()
	fake := fakebinance.New(fakebinance.Options{T: t})
	fake.AddHMACKey(apiKey, apiSecret)
	e := env{fake: fake, clock: &clock{}, rec: &recorder{}}
	cfg.BaseURL = fake.URL()
	cfg.Clock = e.clock.now
	cfg.HTTPClient = &http.Client{Transport: e.rec}
	c, err := binance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

var (
	market = binance.Order{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: d("0.01")}
	limit  = binance.Order{Symbol: "BTCUSDT", Side: "SELL", Type: "LIMIT", Quantity: d("0.01"), Price: d("95000.00")}
)

func apiError(t *testing.T, err error) *binance.APIError {
	t.Helper()
	var e *binance.APIError
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *binance.APIError", err, err)
	}
	return e
}

// assertNoLeak fails when err quotes the secret or a signature sent.
func (e env) assertNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	msg := err.Error()
	for _, s := range append(secrets, e.rec.signatures()...) {
		if s != "" && strings.Contains(msg, s) {
			t.Fatalf("error %q leaks a secret or signature", msg)
		}
	}
}

func TestTestOrderSuccess(t *testing.T) {
	e := setup(t, binance.Config{})
	ctx := context.Background()
	for _, o := range []binance.Order{market, limit} {
		res, err := e.c.TestOrder(ctx, hmacCreds, o)
		if err != nil {
			t.Fatalf("%s: %v", o.Type, err)
		}
		if string(res.Response) != "{}" {
			t.Errorf("%s: response = %s, want {}", o.Type, res.Response)
		}
		if res.UsedWeight1M <= 0 {
			t.Errorf("%s: UsedWeight1M = %d, want the X-MBX-USED-WEIGHT-1M header's value", o.Type, res.UsedWeight1M)
		}
	}
	withRates := market
	withRates.ComputeCommissionRates = true
	res, err := e.c.TestOrder(ctx, hmacCreds, withRates)
	if err != nil {
		t.Fatal(err)
	}
	var rates struct {
		Standard struct{ Maker, Taker string } `json:"standardCommissionForOrder"`
	}
	if err := json.Unmarshal(res.Response, &rates); err != nil || rates.Standard.Taker == "" {
		t.Fatalf("response %s carries no commission rates (%v)", res.Response, err)
	}
	if got := e.fake.AcceptedTestOrders(); got != 3 {
		t.Fatalf("accepted test orders = %d, want 3", got)
	}
	if got := e.fake.Count("/api/v3/order"); got != 0 {
		t.Fatalf("the order-placing endpoint was called %d times", got)
	}
}

func TestTestOrderEd25519(t *testing.T) {
	e := setup(t, binance.Config{})
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	edKey := strings.Repeat("E", 64)
	e.fake.AddEd25519Key(edKey, pub)
	creds := binance.Credentials{APIKey: domain.NewSecret(edKey), Secret: domain.NewSecret(pemKey)}
	if _, err := e.c.TestOrder(context.Background(), creds, limit); err != nil {
		t.Fatal(err)
	}

	// Another Ed25519 key under the same API key: -1022.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(other)
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	creds.Secret = domain.NewSecret(otherPEM)
	_, err := e.c.TestOrder(context.Background(), creds, limit)
	if ae := apiError(t, err); ae.Code != binance.CodeInvalidSignature || ae.Outcome != binance.OutcomeRejected {
		t.Fatalf("err = %v, want -1022 rejected", err)
	}
	e.assertNoLeak(t, err, otherPEM)
}

// A server clock off by more than recvWindow (behind or ahead) gives -1021;
// the client syncs with /api/v3/time, retries once, and keeps the offset.
func TestTimeSyncOnTimestampError(t *testing.T) {
	for name, off := range map[string]time.Duration{"server ahead": 30 * time.Second, "server behind": -10 * time.Second} {
		t.Run(name, func(t *testing.T) {
			e := setup(t, binance.Config{})
			e.fake.SetClockOffset(off)
			if _, err := e.c.TestOrder(context.Background(), hmacCreds, market); err != nil {
				t.Fatal(err)
			}
			if got := e.fake.Count("/api/v3/order/test"); got != 2 {
				t.Fatalf("order/test requests = %d, want 2 (the -1021 and the retry)", got)
			}
			if _, err := e.c.TestOrder(context.Background(), hmacCreds, market); err != nil {
				t.Fatal(err)
			}
			if got, syncs := e.fake.Count("/api/v3/order/test"), e.fake.Count("/api/v3/time"); got != 3 || syncs != 1 {
				t.Fatalf("order/test requests = %d, time syncs = %d; want 3 and 1 (the offset is kept)", got, syncs)
			}
		})
	}
}

// A local clock that falls 30 s further behind on every reading defeats the
// sync: the client retries exactly once and returns the -1021.
func TestTimeSyncRetriesOnce(t *testing.T) {
	fake := fakebinance.New(fakebinance.Options{T: t})
	fake.AddHMACKey(apiKey, apiSecret)
	var mu sync.Mutex
	var readings time.Duration
	c, err := binance.New(binance.Config{BaseURL: fake.URL(), Clock: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		readings++
		return time.Now().Add(-30 * time.Second * readings)
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.TestOrder(context.Background(), hmacCreds, market)
	if ae := apiError(t, err); ae.Code != binance.CodeTimestampOutsideWindow || ae.Outcome != binance.OutcomeRejected {
		t.Fatalf("err = %v, want -1021 rejected", err)
	}
	if got := fake.Count("/api/v3/order/test"); got != 2 {
		t.Fatalf("order/test requests = %d, want 2", got)
	}
}

func TestRejections(t *testing.T) {
	shortKey := binance.Credentials{APIKey: domain.NewSecret("abc123"), Secret: domain.NewSecret(apiSecret)}
	unknownKey := binance.Credentials{APIKey: domain.NewSecret(strings.Repeat("Z", 64)), Secret: domain.NewSecret(apiSecret)}
	wrongSecret := binance.Credentials{APIKey: domain.NewSecret(apiKey), Secret: domain.NewSecret("not-the-secret-" + apiSecret)}
	with := func(f func(*binance.Order)) binance.Order { o := limit; f(&o); return o }
	cases := []struct {
		name   string
		creds  binance.Credentials
		order  binance.Order
		status int
		code   int
		msg    string
	}{
		{"wrong secret", wrongSecret, market, 400, -1022, "Signature for this request is not valid."},
		{"malformed API key", shortKey, market, 401, -2014, "API-key format invalid."},
		{"unknown API key", unknownKey, market, 401, -2015, "Invalid API-key, IP, or permissions for action."},
		{"unknown symbol", hmacCreds, with(func(o *binance.Order) { o.Symbol = "DOGEBTC" }), 400, -1121, "Invalid symbol."},
		{"below minQty", hmacCreds, with(func(o *binance.Order) { o.Quantity = d("0.000001") }), 400, -1013, "Filter failure: LOT_SIZE"},
		{"off stepSize", hmacCreds, with(func(o *binance.Order) { o.Quantity = d("0.000015") }), 400, -1013, "Filter failure: LOT_SIZE"},
		{"off tickSize", hmacCreds, with(func(o *binance.Order) { o.Price = d("95000.005") }), 400, -1013, "Filter failure: PRICE_FILTER"},
		{"limit notional", hmacCreds, with(func(o *binance.Order) { o.Quantity = d("0.00005") }), 400, -1013, "Filter failure: NOTIONAL"},
		{"market notional", hmacCreds, binance.Order{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: d("0.00001")}, 400, -1013, "Filter failure: NOTIONAL"},
		{"too many decimals", hmacCreds, with(func(o *binance.Order) { o.Quantity = d("0.010000001") }), 400, -1111, "Parameter 'quantity' has too much precision."},
	}
	e := setup(t, binance.Config{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.TestOrder(context.Background(), tc.creds, tc.order)
			ae := apiError(t, err)
			if ae.HTTPStatus != tc.status || ae.Code != tc.code || ae.Message != tc.msg || ae.Outcome != binance.OutcomeRejected {
				t.Fatalf("err = %+v, want HTTP %d code %d %q rejected", ae, tc.status, tc.code, tc.msg)
			}
			if errors.Is(err, binance.ErrInvalidSymbol) != (tc.code == -1121) {
				t.Fatalf("errors.Is(err, ErrInvalidSymbol) wrong for %v", err)
			}
			e.assertNoLeak(t, err, apiSecret)
		})
	}
	if got := e.fake.Count("/api/v3/order/test"); got != len(cases) {
		t.Fatalf("order/test requests = %d, want %d (no retries)", got, len(cases))
	}
	if got := e.fake.AcceptedTestOrders(); got != 0 {
		t.Fatalf("accepted = %d, want 0", got)
	}
}

// Malformed orders and unusable credentials never reach the network.
func TestNothingSentForInvalidInput(t *testing.T) {
	e := setup(t, binance.Config{})
	with := func(f func(*binance.Order)) binance.Order { o := limit; f(&o); return o }
	for name, o := range map[string]binance.Order{
		"zero qty":         with(func(o *binance.Order) { o.Quantity = decimal.Zero }),
		"negative qty":     with(func(o *binance.Order) { o.Quantity = d("-1") }),
		"bad side":         with(func(o *binance.Order) { o.Side = "buy" }),
		"bad type":         with(func(o *binance.Order) { o.Type = "STOP_LOSS" }),
		"lowercase symbol": with(func(o *binance.Order) { o.Symbol = "btcusdt" }),
		"symbol injection": with(func(o *binance.Order) { o.Symbol = "BTCUSDT&price=1" }),
		"limit w/o price":  with(func(o *binance.Order) { o.Price = decimal.Zero }),
		"market w/ price":  {Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: d("0.01"), Price: d("1")},
	} {
		if _, err := e.c.TestOrder(context.Background(), hmacCreds, o); !errors.Is(err, binance.ErrInvalidOrder) {
			t.Errorf("%s: err = %v, want ErrInvalidOrder", name, err)
		}
	}
	for name, creds := range map[string]binance.Credentials{
		"no key":          {Secret: domain.NewSecret(apiSecret)},
		"no secret":       {APIKey: domain.NewSecret(apiKey)},
		"key with a CRLF": {APIKey: domain.NewSecret(apiKey + "\r\nX: y"), Secret: domain.NewSecret(apiSecret)},
	} {
		if _, err := e.c.TestOrder(context.Background(), creds, market); !errors.Is(err, binance.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v, want ErrInvalidCredentials", name, err)
		}
	}
	if got := e.fake.Count("/api/v3/order/test"); got != 0 {
		t.Fatalf("order/test requests = %d, want 0", got)
	}
}

// 429 and 418: no retry; Retry-After is surfaced and honoured — nothing is
// sent to Binance until it has passed.
func TestRateLimited(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter time.Duration
	}{{429, 7 * time.Second}, {418, 120 * time.Second}} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			e := setup(t, binance.Config{})
			e.fake.SetFault(tc.status, tc.retryAfter)
			_, err := e.c.TestOrder(context.Background(), hmacCreds, market)
			ae := apiError(t, err)
			if ae.Outcome != binance.OutcomeRateLimited || ae.HTTPStatus != tc.status || ae.RetryAfter != tc.retryAfter || ae.Code != -1003 || ae.NotSent {
				t.Fatalf("err = %+v, want rate limited, HTTP %d, Retry-After %s, code -1003", ae, tc.status, tc.retryAfter)
			}
			if got := e.fake.Count("/api/v3/order/test"); got != 1 {
				t.Fatalf("order/test requests = %d, want 1 (no retry)", got)
			}

			e.fake.ClearFault()
			e.clock.advance(tc.retryAfter - time.Second)
			_, err = e.c.TestOrder(context.Background(), hmacCreds, market)
			ae = apiError(t, err)
			if ae.Outcome != binance.OutcomeRateLimited || !ae.NotSent || ae.RetryAfter != time.Second {
				t.Fatalf("during Retry-After: err = %+v, want rate limited, not sent, 1s left", ae)
			}
			if _, err := e.c.Price(context.Background(), "BTCUSDT"); !errors.As(err, &ae) || !ae.NotSent {
				t.Fatalf("market data during Retry-After: err = %v, want not sent", err)
			}
			if got := e.fake.Count("/api/v3/order/test") + e.fake.Count("/api/v3/ticker/price"); got != 1 {
				t.Fatalf("requests during Retry-After = %d, want none", got-1)
			}

			e.clock.advance(time.Second)
			if _, err := e.c.TestOrder(context.Background(), hmacCreds, market); err != nil {
				t.Fatalf("after Retry-After: %v", err)
			}
		})
	}
}

func TestServerErrorIsUnknown(t *testing.T) {
	for _, status := range []int{500, 502, 503} {
		e := setup(t, binance.Config{})
		e.fake.SetFault(status, 0)
		_, err := e.c.TestOrder(context.Background(), hmacCreds, market)
		ae := apiError(t, err)
		if ae.Outcome != binance.OutcomeUnknown || ae.HTTPStatus != status || ae.Code != -1001 {
			t.Fatalf("HTTP %d: err = %+v, want outcome unknown", status, ae)
		}
		if got := e.fake.Count("/api/v3/order/test"); got != 1 {
			t.Fatalf("HTTP %d: order/test requests = %d, want 1 (no retry)", status, got)
		}
	}
}

func TestTimeoutIsUnknown(t *testing.T) {
	e := setup(t, binance.Config{Timeout: 100 * time.Millisecond})
	e.fake.SetLatency(5 * time.Second)
	start := time.Now()
	_, err := e.c.TestOrder(context.Background(), hmacCreds, market)
	if time.Since(start) > 2*time.Second {
		t.Fatalf("the request took %s despite a 100ms timeout", time.Since(start))
	}
	ae := apiError(t, err)
	if ae.Outcome != binance.OutcomeUnknown || ae.HTTPStatus != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want outcome unknown wrapping context.DeadlineExceeded", err)
	}
	e.assertNoLeak(t, err, apiSecret, apiKey)
}

func TestUnreachableIsUnknown(t *testing.T) {
	e := setup(t, binance.Config{})
	e.fake.Close()
	_, err := e.c.TestOrder(context.Background(), hmacCreds, market)
	if ae := apiError(t, err); ae.Outcome != binance.OutcomeUnknown || ae.HTTPStatus != 0 {
		t.Fatalf("err = %v, want outcome unknown", err)
	}
	e.assertNoLeak(t, err, apiSecret, apiKey)
}

func TestSymbolRules(t *testing.T) {
	e := setup(t, binance.Config{})
	r, err := e.c.SymbolRules(context.Background(), "BTCUSDT")
	if err != nil {
		t.Fatal(err)
	}
	eq := func(name string, got decimal.Decimal, want string) {
		if !got.Equal(d(want)) {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if r.Symbol != "BTCUSDT" || r.Status != "TRADING" || r.BaseAsset != "BTC" || r.QuoteAsset != "USDT" || r.BasePrecision != 8 {
		t.Errorf("rules = %+v", r)
	}
	eq("LotSize.MinQty", r.LotSize.MinQty, "0.00001")
	eq("LotSize.StepSize", r.LotSize.StepSize, "0.00001")
	eq("LotSize.MaxQty", r.LotSize.MaxQty, "9000")
	eq("MarketLotSize.MaxQty", r.MarketLotSize.MaxQty, "85")
	eq("PriceFilter.TickSize", r.PriceFilter.TickSize, "0.01")
	eq("PriceFilter.MinPrice", r.PriceFilter.MinPrice, "0.01")
	eq("Notional.MinNotional", r.Notional.MinNotional, "5")
	if r.Notional.Filter != "NOTIONAL" || !r.Notional.ApplyMinToMarket || r.Notional.ApplyMaxToMarket || r.Notional.AvgPriceMins != 5 {
		t.Errorf("notional = %+v", r.Notional)
	}
	if len(r.OrderTypes) == 0 {
		t.Error("no order types")
	}

	_, err = e.c.SymbolRules(context.Background(), "DOGEBTC")
	if !errors.Is(err, binance.ErrInvalidSymbol) || apiError(t, err).Code != -1121 {
		t.Fatalf("unknown symbol: err = %v, want -1121 matching ErrInvalidSymbol", err)
	}
	n := e.fake.Count("/api/v3/exchangeInfo")
	if _, err := e.c.SymbolRules(context.Background(), "btc/usdt"); !errors.Is(err, binance.ErrInvalidSymbol) {
		t.Fatalf("malformed symbol: err = %v, want ErrInvalidSymbol", err)
	}
	if e.fake.Count("/api/v3/exchangeInfo") != n {
		t.Fatal("a malformed symbol was sent")
	}
}

// The older MIN_NOTIONAL filter maps onto Notional.
func TestSymbolRulesMinNotional(t *testing.T) {
	fake := fakebinance.New(fakebinance.Options{T: t, Symbols: []fakebinance.Symbol{{
		Symbol: "LTCBTC", BaseAsset: "LTC", QuoteAsset: "BTC", BasePrecision: 8, QuotePrecision: 8, Price: "0.001",
		Filters: []fakebinance.Filter{{Type: "MIN_NOTIONAL", Min: "0.0001", ApplyMin: true, AvgPriceMins: 5}},
	}}})
	c, err := binance.New(binance.Config{BaseURL: fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.SymbolRules(context.Background(), "LTCBTC")
	if err != nil {
		t.Fatal(err)
	}
	n := r.Notional
	if n.Filter != "MIN_NOTIONAL" || !n.MinNotional.Equal(d("0.0001")) || !n.ApplyMinToMarket || !n.MaxNotional.IsZero() || n.AvgPriceMins != 5 {
		t.Fatalf("notional = %+v", n)
	}
	if !r.LotSize.StepSize.IsZero() || !r.PriceFilter.TickSize.IsZero() {
		t.Fatalf("absent filters must read as zero (no limit): %+v", r)
	}
}

func TestSymbolRulesCached(t *testing.T) {
	e := setup(t, binance.Config{RulesTTL: time.Minute})
	ctx := context.Background()
	for range 3 {
		if _, err := e.c.SymbolRules(ctx, "BTCUSDT"); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.fake.Count("/api/v3/exchangeInfo"); got != 1 {
		t.Fatalf("exchangeInfo requests = %d, want 1", got)
	}
	r, _ := e.c.SymbolRules(ctx, "BTCUSDT")
	r.OrderTypes[0] = "MUTATED"
	if r2, _ := e.c.SymbolRules(ctx, "BTCUSDT"); r2.OrderTypes[0] == "MUTATED" {
		t.Fatal("a caller's change reached the cache")
	}
	e.clock.advance(time.Minute)
	if _, err := e.c.SymbolRules(ctx, "BTCUSDT"); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Count("/api/v3/exchangeInfo"); got != 2 {
		t.Fatalf("exchangeInfo requests after the TTL = %d, want 2", got)
	}
}

func TestSymbolRulesConcurrentCallersShareOneFetch(t *testing.T) {
	e := setup(t, binance.Config{})
	e.fake.SetLatency(100 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			if _, err := e.c.SymbolRules(context.Background(), "BTCUSDT"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := e.fake.Count("/api/v3/exchangeInfo"); got != 1 {
		t.Fatalf("exchangeInfo requests = %d, want 1", got)
	}
}

// A caller giving up does not fail the others waiting on the same fetch.
func TestSharedFetchSurvivesOneCallerCancelling(t *testing.T) {
	e := setup(t, binance.Config{})
	e.fake.SetLatency(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := e.c.SymbolRules(ctx, "BTCUSDT")
		first <- err
	}()
	time.Sleep(5 * time.Millisecond)
	if _, err := e.c.SymbolRules(context.Background(), "BTCUSDT"); err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first caller: err = %v, want its deadline", err)
	}
	if got := e.fake.Count("/api/v3/exchangeInfo"); got != 1 {
		t.Fatalf("exchangeInfo requests = %d, want 1", got)
	}
}

func TestPriceCached(t *testing.T) {
	e := setup(t, binance.Config{PriceTTL: 2 * time.Second})
	ctx := context.Background()
	p, err := e.c.Price(ctx, "BTCUSDT")
	if err != nil || !p.Equal(d("95000")) {
		t.Fatalf("price = %s, %v; want 95000", p, err)
	}
	e.fake.SetPrice("BTCUSDT", "96000.50")
	if p, _ := e.c.Price(ctx, "BTCUSDT"); !p.Equal(d("95000")) {
		t.Fatalf("price within the TTL = %s, want the cached 95000", p)
	}
	e.clock.advance(2 * time.Second)
	if p, _ := e.c.Price(ctx, "BTCUSDT"); !p.Equal(d("96000.50")) {
		t.Fatalf("price after the TTL = %s, want 96000.50", p)
	}
	if got := e.fake.Count("/api/v3/ticker/price"); got != 2 {
		t.Fatalf("ticker requests = %d, want 2", got)
	}
	if _, err := e.c.Price(ctx, "DOGEBTC"); !errors.Is(err, binance.ErrInvalidSymbol) {
		t.Fatalf("unknown symbol: err = %v, want ErrInvalidSymbol", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]binance.Config{
		"empty URL":       {},
		"relative URL":    {BaseURL: "testnet.binance.vision"},
		"ftp URL":         {BaseURL: "ftp://testnet.binance.vision"},
		"recvWindow 61 s": {BaseURL: "https://testnet.binance.vision", RecvWindow: 61 * time.Second},
	} {
		if _, err := binance.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

package fakebinance

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The REST docs' signed-request examples ("HMAC Keys"): key, secret, time.
const (
	docKey    = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
	docSecret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
	docTime   = 1499827319559
	docSig    = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
)

var ltcbtc = Symbol{
	Symbol: "LTCBTC", BaseAsset: "LTC", QuoteAsset: "BTC", BasePrecision: 8, QuotePrecision: 8, Price: "0.1",
	Filters: []Filter{
		{Type: "PRICE_FILTER", Min: "0.000001", Max: "1000", Step: "0.000001"},
		{Type: "LOT_SIZE", Min: "0.001", Max: "100000", Step: "0.001"},
		{Type: "MIN_NOTIONAL", Min: "0.0001", ApplyMin: true, AvgPriceMins: 5},
	},
}

// docServer runs at the documented example's time with its key.
func docServer(t *testing.T) *Server {
	s := New(Options{T: t, Symbols: append(DefaultSymbols(), ltcbtc), Clock: func() time.Time { return time.UnixMilli(docTime) }})
	s.AddHMACKey(docKey, docSecret)
	return s
}

type answer struct {
	status int
	code   int
	msg    string
	body   string
	header http.Header
}

func send(t *testing.T, s *Server, method, path, key, query, body string) answer {
	t.Helper()
	target := s.URL() + path
	if query != "" {
		target += "?" + query
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("X-MBX-APIKEY", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(b), header: resp.Header}
	var e struct {
		Code int
		Msg  string
	}
	if json.Unmarshal(b, &e) == nil {
		a.code, a.msg = e.Code, e.Msg
	}
	return a
}

func hmacHex(secret, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return hex.EncodeToString(m.Sum(nil))
}

// The three documented ways to send a signed request: everything in the
// query string, everything in the body, and split between the two (the
// signature then covers query string + body with no separator).
func TestDocumentedSignedRequests(t *testing.T) {
	s := docServer(t)
	const params = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
	const mixedQuery = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
	const mixedBody = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
	mixedSig := hmacHex(docSecret, mixedQuery+mixedBody)
	for name, req := range map[string][2]string{
		"query": {params + "&signature=" + docSig, ""},
		"body":  {"", params + "&signature=" + docSig},
		"mixed": {mixedQuery, mixedBody + "&signature=" + mixedSig},
	} {
		a := send(t, s, "POST", "/api/v3/order/test", docKey, req[0], req[1])
		if a.status != 200 || a.body != "{}" {
			t.Errorf("%s: %d %s, want 200 {}", name, a.status, a.body)
		}
	}
	// The mixed request signed as if joined by '&' is refused.
	a := send(t, s, "POST", "/api/v3/order/test", docKey, mixedQuery, mixedBody+"&signature="+hmacHex(docSecret, mixedQuery+"&"+mixedBody))
	if a.code != -1022 {
		t.Errorf("a signature over query&body: code %d, want -1022", a.code)
	}
	if got := s.AcceptedTestOrders(); got != 3 {
		t.Fatalf("accepted = %d, want 3", got)
	}
}

// signed builds a body with the documented time, recvWindow and signature.
func signed(params string) string {
	p := params + "&recvWindow=5000&timestamp=" + strconv.Itoa(docTime)
	return p + "&signature=" + hmacHex(docSecret, p)
}

func TestOrderTestRejections(t *testing.T) {
	s := docServer(t)
	s.AddHMACKey(strings.Repeat("h", 64), "other-secret")
	const ok = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=95000.00"
	cases := []struct {
		name, key, body string
		status, code    int
		msg             string
	}{
		{"no API key", "", signed(ok), 401, -2014, "API-key format invalid."},
		{"API key of 63 chars", docKey[1:], signed(ok), 401, -2014, "API-key format invalid."},
		{"API key with a dash", "-" + docKey[1:], signed(ok), 401, -2014, "API-key format invalid."},
		{"unknown API key", strings.Repeat("k", 64), signed(ok), 401, -2015, "Invalid API-key, IP, or permissions for action."},
		{"other key's secret", strings.Repeat("h", 64), signed(ok), 400, -1022, "Signature for this request is not valid."},
		{"no timestamp", docKey, ok + "&signature=" + hmacHex(docSecret, ok), 400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."},
		{"no signature", docKey, ok + "&timestamp=" + strconv.Itoa(docTime), 400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."},
		{"recvWindow over 60000", docKey, ok + "&recvWindow=60001&timestamp=" + strconv.Itoa(docTime) + "&signature=x", 400, -1131, "recvWindow must be less than 60000"},
		{"timestamp too old", docKey, ok + "&timestamp=" + strconv.Itoa(docTime-5001) + "&signature=x", 400, -1021, "Timestamp for this request is outside of the recvWindow."},
		{"timestamp 1000 ms ahead", docKey, ok + "&timestamp=" + strconv.Itoa(docTime+1000) + "&signature=x", 400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."},
		{"tampered after signing", docKey, strings.Replace(signed(ok), "quantity=0.01", "quantity=0.02", 1), 400, -1022, "Signature for this request is not valid."},
		{"no symbol", docKey, signed("side=BUY&type=MARKET&quantity=1"), 400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."},
		{"lowercase symbol", docKey, signed("symbol=btcusdt&side=BUY&type=MARKET&quantity=1"), 400, -1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."},
		{"unknown symbol", docKey, signed("symbol=DOGEBTC&side=BUY&type=MARKET&quantity=1"), 400, -1121, "Invalid symbol."},
		{"no side", docKey, signed("symbol=BTCUSDT&type=MARKET&quantity=1"), 400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."},
		{"bad side", docKey, signed("symbol=BTCUSDT&side=HOLD&type=MARKET&quantity=1"), 400, -1117, "Invalid side."},
		{"bad type", docKey, signed("symbol=BTCUSDT&side=BUY&type=ICEBERG&quantity=1"), 400, -1116, "Invalid orderType."},
		{"limit without timeInForce", docKey, signed("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=95000"), 400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."},
		{"bad timeInForce", docKey, signed("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=DAY&quantity=0.01&price=95000"), 400, -1115, "Invalid timeInForce."},
		{"limit without price", docKey, signed("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01"), 400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."},
		{"market with price", docKey, signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&price=95000"), 400, -1106, "Parameter 'price' sent when not required."},
		{"market without quantity", docKey, signed("symbol=BTCUSDT&side=BUY&type=MARKET"), 400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"},
		{"negative quantity", docKey, signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=-1"), 400, -1100, "Illegal characters found in parameter 'quantity'; legal range is '" + decimalPattern + "'."},
		{"exponent quantity", docKey, signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1e-2"), 400, -1100, "Illegal characters found in parameter 'quantity'; legal range is '" + decimalPattern + "'."},
		{"NaN price", docKey, signed("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=NaN"), 400, -1100, "Illegal characters found in parameter 'price'; legal range is '" + decimalPattern + "'."},
		{"9 decimals", docKey, signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010000001"), 400, -1111, "Parameter 'quantity' has too much precision."},
		{"zero quantity", docKey, signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0"), 400, -1013, "Filter failure: LOT_SIZE"},
		{"above maxQty", docKey, signed("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=9000.00001&price=0.01"), 400, -1013, "Filter failure: LOT_SIZE"},
		{"above MARKET_LOT_SIZE", docKey, signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=86"), 400, -1013, "Filter failure: MARKET_LOT_SIZE"},
		{"below minPrice", docKey, signed("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.001"), 400, -1013, "Filter failure: PRICE_FILTER"},
		{"above maxNotional", docKey, signed("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=100&price=95000"), 400, -1013, "Filter failure: NOTIONAL"},
		{"MIN_NOTIONAL", docKey, signed("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=0.01"), 400, -1013, "Filter failure: MIN_NOTIONAL"},
	}
	for _, tc := range cases {
		a := send(t, s, "POST", "/api/v3/order/test", tc.key, "", tc.body)
		if a.status != tc.status || a.code != tc.code || a.msg != tc.msg {
			t.Errorf("%s: %d %s, want %d {code %d, msg %q}", tc.name, a.status, a.body, tc.status, tc.code, tc.msg)
		}
	}
	if got := s.AcceptedTestOrders(); got != 0 {
		t.Fatalf("accepted = %d, want 0", got)
	}
	if got := s.Count("/api/v3/order/test"); got != len(cases) {
		t.Fatalf("Count = %d, want %d", got, len(cases))
	}
}

// Notional limits that do not apply to MARKET orders are not enforced on
// them: maxNotional has applyMaxToMarket=false on BTCUSDT; the average
// price is the ticker price.
func TestMarketNotionalUsesAveragePrice(t *testing.T) {
	s := docServer(t)
	for _, tc := range []struct {
		price, qty string
		code       int
	}{
		{"95000", "85", 0},     // 8,075,000 ≤ max but max is not applied anyway
		{"200000", "50", 0},    // 10,000,000 > maxNotional, not applied to MARKET
		{"400", "0.01", -1013}, // 4 < minNotional 5, applied to MARKET
		{"500", "0.01", 0},     // 5
	} {
		s.SetPrice("BTCUSDT", tc.price)
		a := send(t, s, "POST", "/api/v3/order/test", docKey, "", signed("symbol=BTCUSDT&side=SELL&type=MARKET&quantity="+tc.qty))
		if a.code != tc.code {
			t.Errorf("qty %s at %s: %d %s, want code %d", tc.qty, tc.price, a.status, a.body, tc.code)
		}
	}
}

func TestClosedMarket(t *testing.T) {
	halted := DefaultSymbols()[0]
	halted.Status = "HALT"
	s := New(Options{T: t, Symbols: []Symbol{halted}, Clock: func() time.Time { return time.UnixMilli(docTime) }})
	s.AddHMACKey(docKey, docSecret)
	a := send(t, s, "POST", "/api/v3/order/test", docKey, "", signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"))
	if a.code != -1013 || a.msg != "Market is closed." {
		t.Fatalf("%d %s, want -1013 Market is closed.", a.status, a.body)
	}
}

func TestCommissionRates(t *testing.T) {
	s := docServer(t)
	a := send(t, s, "POST", "/api/v3/order/test", docKey, "", signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&computeCommissionRates=true"))
	var r struct {
		Standard map[string]string `json:"standardCommissionForOrder"`
		Discount map[string]any    `json:"discount"`
	}
	if a.status != 200 || json.Unmarshal([]byte(a.body), &r) != nil || r.Standard["maker"] == "" || r.Discount == nil {
		t.Fatalf("%d %s, want the commission objects", a.status, a.body)
	}
	if w := a.header.Get("X-MBX-USED-WEIGHT-1M"); w != "20" {
		t.Fatalf("weight = %s, want 20", w)
	}
}

// X-MBX-USED-WEIGHT-1M adds each request's weight within a minute of the
// server's clock and starts again the next minute.
func TestUsedWeight(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	s := New(Options{T: t, Clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	weights := []string{}
	for _, path := range []string{"/api/v3/time", "/api/v3/ticker/price?symbol=BTCUSDT", "/api/v3/exchangeInfo?symbol=BTCUSDT"} {
		p, q, _ := strings.Cut(path, "?")
		weights = append(weights, send(t, s, "GET", p, "", q, "").header.Get("X-MBX-USED-WEIGHT-1M"))
	}
	if got := strings.Join(weights, ","); got != "1,3,23" {
		t.Fatalf("weights = %s, want 1,3,23", got)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if w := send(t, s, "GET", "/api/v3/time", "", "", "").header.Get("X-MBX-USED-WEIGHT-1M"); w != "1" {
		t.Fatalf("weight in the next minute = %s, want 1", w)
	}
}

func TestMarketData(t *testing.T) {
	s := docServer(t)
	s.SetClockOffset(1500 * time.Millisecond)
	if a := send(t, s, "GET", "/api/v3/time", "", "", ""); a.body != fmt.Sprintf(`{"serverTime":%d}`, docTime+1500) {
		t.Fatalf("time: %s", a.body)
	}
	if a := send(t, s, "GET", "/api/v3/ticker/price", "", "symbol=BTCUSDT", ""); a.body != `{"price":"95000.00000000","symbol":"BTCUSDT"}` {
		t.Fatalf("ticker: %s", a.body)
	}
	if a := send(t, s, "GET", "/api/v3/ticker/price", "", "", ""); !strings.Contains(a.body, `"LTCBTC"`) || !strings.HasPrefix(a.body, "[") {
		t.Fatalf("all tickers: %s", a.body)
	}
	for _, q := range []string{"symbol=DOGEBTC", "symbol=btcusdt"} {
		for _, p := range []string{"/api/v3/ticker/price", "/api/v3/exchangeInfo"} {
			if a := send(t, s, "GET", p, "", q, ""); a.status != 400 || (a.code != -1121 && a.code != -1100) {
				t.Errorf("%s?%s: %d %s", p, q, a.status, a.body)
			}
		}
	}
	var info struct {
		Symbols []struct {
			Symbol  string
			Filters []map[string]any
		}
	}
	a := send(t, s, "GET", "/api/v3/exchangeInfo", "", "", "")
	if err := json.Unmarshal([]byte(a.body), &info); err != nil || len(info.Symbols) != 3 {
		t.Fatalf("exchangeInfo: %v %s", err, a.body)
	}
	lot := info.Symbols[0].Filters[1]
	if lot["filterType"] != "LOT_SIZE" || lot["stepSize"] != "0.00001000" || lot["minQty"] != "0.00001000" {
		t.Fatalf("BTCUSDT LOT_SIZE = %v", lot)
	}
}

// recordingTB captures the fake's complaint instead of failing this test.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestOrderPlacingEndpointFailsTheTest(t *testing.T) {
	tb := &recordingTB{TB: t}
	s := New(Options{T: tb})
	s.AddHMACKey(docKey, docSecret)
	a := send(t, s, "POST", "/api/v3/order", docKey, "", signed("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"))
	if a.status != http.StatusForbidden {
		t.Errorf("status = %d, want 403", a.status)
	}
	if s.Count("/api/v3/order") != 1 || len(tb.errs) != 1 {
		t.Fatalf("count = %d, test errors = %v; want 1 and one complaint", s.Count("/api/v3/order"), tb.errs)
	}
}

func TestFaults(t *testing.T) {
	s := docServer(t)
	s.SetFault(429, 7*time.Second)
	a := send(t, s, "GET", "/api/v3/time", "", "", "")
	if a.status != 429 || a.code != -1003 || a.header.Get("Retry-After") != "7" {
		t.Fatalf("429: %d %v %s", a.status, a.header, a.body)
	}
	s.SetFault(418, 2*time.Minute)
	a = send(t, s, "GET", "/api/v3/time", "", "", "")
	if a.status != 418 || a.code != -1003 || a.header.Get("Retry-After") != "120" || !strings.Contains(a.msg, "banned until") {
		t.Fatalf("418: %d %v %s", a.status, a.header, a.body)
	}
	s.SetFault(503, 0)
	if a = send(t, s, "GET", "/api/v3/time", "", "", ""); a.status != 503 || a.code != -1001 {
		t.Fatalf("503: %d %s", a.status, a.body)
	}
	s.ClearFault()
	if a = send(t, s, "GET", "/api/v3/time", "", "", ""); a.status != 200 {
		t.Fatalf("after ClearFault: %d %s", a.status, a.body)
	}
}

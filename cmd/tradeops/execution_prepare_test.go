package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// TestPrepareDecidesUnderTheUsersProfileAndShadows: prepare answers every
// check, the shadow decision and whether a secret is stored, for accepted
// and rejected orders alike (200), appends execution.prepare, and sends
// nothing to any exchange.
func TestPrepareDecidesUnderTheUsersProfileAndShadows(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})

	// The runbook's order, as a JSON number: both profiles accept it.
	r := f.mustStatus(f.prepare(f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`), http.StatusOK)
	if r.str("decision") != "accepted" || r.str("risk_profile") != "model2" || r.str("qty") != "0.01" ||
		r.str("reference_price") != "95000" || r.str("notional") != "950" || r.str("exchange") != "BINANCE" || r.str("order_type") != "MARKET" {
		t.Fatalf("prepare: %s", r.raw)
	}
	shadow := r.body["shadow"].(map[string]any)
	if shadow["profile"] != "loose" || shadow["decision"] != "accepted" || r.body["secret_configured"] != false {
		t.Fatalf("shadow or secret: %s", r.raw)
	}
	var codes []string
	for _, c := range r.body["checks"].([]any) {
		m := c.(map[string]any)
		codes = append(codes, m["code"].(string))
		if m["passed"] != true || m["name"] == "" || m["limit"] == nil || m["value"] == nil {
			t.Fatalf("check %v", m)
		}
	}
	for _, want := range []string{domain.CheckMaxNotional, domain.CheckDailyOrderCount, domain.CheckExchangeLotSize, domain.CheckExchangeNotional} {
		if !slices.Contains(codes, want) {
			t.Fatalf("checks %v lack %s", codes, want)
		}
	}

	// 1 BTC (95,000): loose accepts it, model2 (max 0.05, 5,000) would not.
	r = f.mustStatus(f.prepare(f.loose, `{"exchange":"binance","symbol":"btcusdt","side":"buy","qty":"1"}`), http.StatusOK)
	shadow = r.body["shadow"].(map[string]any)
	if r.str("decision") != "accepted" || r.str("risk_profile") != "loose" || shadow["decision"] != "rejected" ||
		!slices.Contains(shadow["failed_checks"].([]any), any(domain.CheckMaxQty)) {
		t.Fatalf("loose: %s", r.raw)
	}
	// The same order under model2: a rejected decision is still a 200.
	r = f.mustStatus(f.prepare(f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":1}`), http.StatusOK)
	if r.str("decision") != "rejected" {
		t.Fatalf("model2: %s", r.raw)
	}
	// A LIMIT price outside model2's ±2 % collar.
	r = f.mustStatus(f.prepare(f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"SELL","qty":"0.01","price":"99000","order_type":"LIMIT"}`), http.StatusOK)
	if r.str("decision") != "rejected" || r.str("price") != "99000" || r.str("notional") != "990" {
		t.Fatalf("collar: %s", r.raw)
	}
	// IBKR, simulated: 1 AAPL at the simulator's 230.
	r = f.mustStatus(f.prepare(f.model2, `{"exchange":"IBKR","symbol":"AAPL","side":"BUY","qty":1}`), http.StatusOK)
	if r.str("decision") != "accepted" || r.str("reference_price") != "230" {
		t.Fatalf("ibkr: %s", r.raw)
	}
	// A stored secret shows.
	f.putBinanceHMAC(f.model2)
	r = f.mustStatus(f.prepare(f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`), http.StatusOK)
	if r.body["secret_configured"] != true {
		t.Fatalf("secret_configured: %s", r.raw)
	}

	evs := f.events("execution.")
	if len(evs) != 6 {
		t.Fatalf("%d execution events", len(evs))
	}
	first := evs[0].Data
	if evs[0].Type != domain.EventExecutionPrepare || first["profile"] != "model2" || first["decision"] != "accepted" ||
		first["execution_id"] == "" || evs[0].Stream != "execution-"+first["execution_id"].(string) || first["day"] != domain.UTCDay(time.Now()) {
		t.Fatalf("event %s", evs[0].Raw)
	}
	if n := f.binance.Count("/api/v3/order/test"); n != 0 {
		t.Fatalf("prepare sent %d test orders", n)
	}
}

// TestExecutionBadInputs: every endpoint answers bad input with a clear 4xx
// and its code, sends nothing and appends nothing.
func TestExecutionBadInputs(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{gateway: true})
	cases := []struct {
		name, fields string
		status       int
		code         string
	}{
		{"zero", `"symbol":"BTCUSDT","side":"BUY","qty":0`, 400, "invalid_quantity"},
		{"zero string", `"symbol":"BTCUSDT","side":"BUY","qty":"0.000"`, 400, "invalid_quantity"},
		{"negative", `"symbol":"BTCUSDT","side":"BUY","qty":-0.01`, 400, "invalid_quantity"},
		{"NaN", `"symbol":"BTCUSDT","side":"BUY","qty":NaN`, 400, "malformed_json"},
		{"NaN string", `"symbol":"BTCUSDT","side":"BUY","qty":"NaN"`, 400, "invalid_quantity"},
		{"Infinity string", `"symbol":"BTCUSDT","side":"BUY","qty":"Infinity"`, 400, "invalid_quantity"},
		{"1e309", `"symbol":"BTCUSDT","side":"BUY","qty":1e309`, 400, "invalid_quantity"},
		{"huge", `"symbol":"BTCUSDT","side":"BUY","qty":"10000000000000"`, 400, "invalid_quantity"},
		{"too many decimals", `"symbol":"BTCUSDT","side":"BUY","qty":0.0000000000000000001`, 400, "invalid_quantity"},
		{"spaces", `"symbol":"BTCUSDT","side":"BUY","qty":" 0.01"`, 400, "invalid_quantity"},
		{"boolean qty", `"symbol":"BTCUSDT","side":"BUY","qty":true`, 400, "invalid_quantity"},
		{"missing qty", `"symbol":"BTCUSDT","side":"BUY"`, 400, "invalid_quantity"},
		{"bad price", `"symbol":"BTCUSDT","side":"BUY","qty":0.01,"order_type":"LIMIT","price":-1`, 400, "invalid_price"},
		{"limit without price", `"symbol":"BTCUSDT","side":"BUY","qty":0.01,"order_type":"LIMIT"`, 400, "invalid_price"},
		{"market with price", `"symbol":"BTCUSDT","side":"BUY","qty":0.01,"price":95000`, 400, "invalid_price"},
		{"unknown side", `"symbol":"BTCUSDT","side":"HOLD","qty":0.01`, 400, "invalid_side"},
		{"unicode side", `"symbol":"BTCUSDT","side":"ſell","qty":0.01`, 400, "invalid_side"},
		{"unknown order type", `"symbol":"BTCUSDT","side":"BUY","qty":0.01,"order_type":"STOP"`, 400, "invalid_order_type"},
		{"bad symbol", `"symbol":"BTC-USDT","side":"BUY","qty":0.01`, 400, "invalid_symbol"},
		{"symbol wrong type", `"symbol":5,"side":"BUY","qty":0.01`, 400, "invalid_field"},
		{"unknown field", `"symbol":"BTCUSDT","side":"BUY","qty":0.01,"leverage":10`, 400, "unknown_field"},
		{"NUL", `"symbol":"BTC\u0000USDT","side":"BUY","qty":0.01`, 400, "invalid_encoding"},
	}
	endpoints := []struct {
		path, exchange, token string
	}{
		{"/ops/execution/prepare", `"exchange":"BINANCE",`, f.model2},
		{"/ops/execution/binance/test-order", "", f.model2},
		{"/ops/execution/ibkr/test-order", "", f.model2},
	}
	// The credentials are stored, so only the input can be at fault.
	f.putBinanceHMAC(f.model2)
	f.putSecret(f.model2, "IBKR", `{"account_id":"DU1234567"}`)
	for _, e := range endpoints {
		for _, c := range cases {
			t.Run(e.path+"/"+c.name, func(t *testing.T) {
				f.t = t
				f.mustCode(f.post(e.path, e.token, "{"+e.exchange+c.fields+"}", ""), c.status, c.code)
			})
		}
	}
	f.t = t
	extra := []struct {
		path, body, key string
		status          int
		code            string
	}{
		{"/ops/execution/prepare", `{"exchange":"KRAKEN","symbol":"BTCUSDT","side":"BUY","qty":0.01}`, "", 400, "unknown_exchange"},
		{"/ops/execution/prepare", `{"exchange":"BINANCE","symbol":"XYZUSDT","side":"BUY","qty":0.01}`, "", 400, "unknown_symbol"},
		{"/ops/execution/binance/test-order", `{"symbol":"XYZUSDT","side":"BUY","qty":0.01}`, "", 400, "unknown_symbol"},
		{"/ops/execution/ibkr/test-order", `{"symbol":"ES","side":"BUY","qty":1}`, "", 400, "unknown_symbol"},
		{"/ops/execution/binance/test-order", `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`, "", 400, "unknown_field"},
		{"/ops/execution/prepare", `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`, strings.Repeat("k", 129), 400, "invalid_idempotency_key"},
		{"/ops/execution/binance/test-order", `{"symbol":"BTCUSDT","side":"BUY","qty":0.01}`, "tab\tkey", 400, "invalid_idempotency_key"},
	}
	for _, c := range extra {
		f.mustCode(f.post(c.path, f.model2, c.body, c.key), c.status, c.code)
	}
	// An empty header is a key, and an invalid one.
	f.mustCode(f.send(http.MethodPost, "/ops/execution/prepare", f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`,
		http.Header{"Idempotency-Key": {""}}), 400, "invalid_idempotency_key")
	// The loose user has no secrets stored.
	f.mustCode(f.binanceTest(f.loose, `{"symbol":"BTCUSDT","side":"BUY","qty":0.01}`, ""), http.StatusConflict, "secret_missing")
	r := f.mustCode(f.ibkrTest(f.loose, `{"symbol":"AAPL","side":"BUY","qty":1}`, ""), http.StatusConflict, "secret_missing")
	if !strings.Contains(r.raw, "IBKR") {
		t.Fatalf("secret_missing does not name the exchange: %s", r.raw)
	}

	if evs := f.events("execution."); len(evs) != 0 {
		t.Fatalf("bad input appended %d events, first %s", len(evs), evs[0].Raw)
	}
	if n, w := f.binance.Count("/api/v3/order/test"), f.gateway.Calls("POST /iserver/account/{accountId}/orders/whatif"); n != 0 || w != 0 {
		t.Fatalf("bad input sent %d Binance test orders and %d what-ifs", n, w)
	}
}

// TestLastDailySlotConcurrently: with 49 of model2's 50 daily orders used,
// 50 concurrent prepares leave exactly one accepted, and the usage row
// counts it once.
func TestLastDailySlotConcurrently(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})
	const order = `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`
	for i := range 49 {
		if r := f.mustStatus(f.prepare(f.model2, order), http.StatusOK); r.str("decision") != "accepted" {
			t.Fatalf("prepare %d: %s", i, r.raw)
		}
	}
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		accepted, failed int
	)
	start := make(chan struct{})
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, _, raw, err := rawPost(context.Background(), t, f.base+"/ops/execution/prepare", f.model2, order, nil)
			var body struct {
				Decision string
				Checks   []domain.Check
			}
			_ = json.Unmarshal([]byte(raw), &body)
			failedDaily := slices.ContainsFunc(body.Checks, func(c domain.Check) bool { return !c.Passed && c.Code == domain.CheckDailyOrderCount })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil || status != http.StatusOK:
				failed++
				t.Errorf("prepare: %d %s %v", status, raw, err)
			case body.Decision == "accepted":
				accepted++
			case !failedDaily:
				t.Errorf("rejected for another reason: %s", raw)
			}
		}()
	}
	close(start)
	wg.Wait()
	if accepted != 1 || failed != 0 {
		t.Fatalf("%d accepted, %d failed (want exactly one accepted)", accepted, failed)
	}
	var orders int
	var notional string
	if err := f.pool.QueryRow(context.Background(), `SELECT orders, notional::text FROM execution_daily_usage d JOIN users u ON u.id = d.user_id
		WHERE u.email = 'model2@x.test' AND d.day = $1::date`, domain.UTCDay(time.Now())).Scan(&orders, &notional); err != nil {
		t.Fatal(err)
	}
	if orders != 50 || notional != "47500.00" && notional != "47500" {
		t.Fatalf("usage %d orders, %s notional", orders, notional)
	}
	if n := len(f.events(domain.EventExecutionPrepare)); n != 99 {
		t.Fatalf("%d prepare events, want 99", n)
	}
}

// TestPrepareIdempotent: a repeat with the same key returns the first
// answer byte for byte without deciding again; another body is 422.
func TestPrepareIdempotent(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})
	const order = `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`
	first := f.mustStatus(f.post("/ops/execution/prepare", f.model2, order, "key-1"), http.StatusOK)
	// The same order written another way is the same request.
	again := f.mustStatus(f.post("/ops/execution/prepare", f.model2, `{"qty":"0.010","side":"buy","symbol":"btcusdt","exchange":"binance"}`, "key-1"), http.StatusOK)
	if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("replay:\n%s\n%s", first.raw, again.raw)
	}
	f.mustCode(f.post("/ops/execution/prepare", f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.02}`, "key-1"),
		http.StatusUnprocessableEntity, "idempotency_key_reused")
	// Keys are per user: the same key is free for another.
	other := f.mustStatus(f.post("/ops/execution/prepare", f.loose, order, "key-1"), http.StatusOK)
	if other.str("execution_id") == first.str("execution_id") {
		t.Fatal("another user's key replayed")
	}
	// A refused request leaves its key free for the corrected one.
	f.mustCode(f.post("/ops/execution/prepare", f.model2, `{"exchange":"BINANCE","symbol":"XYZUSDT","side":"BUY","qty":0.01}`, "key-2"), 400, "unknown_symbol")
	f.mustStatus(f.post("/ops/execution/prepare", f.model2, order, "key-2"), http.StatusOK)
	if n := len(f.events(domain.EventExecutionPrepare)); n != 3 {
		t.Fatalf("%d prepare events, want 3", n)
	}
	// An expired key (older than 24 h) is a new one.
	if _, err := f.pool.Exec(context.Background(), `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'key-1'`); err != nil {
		t.Fatal(err)
	}
	if r := f.mustStatus(f.post("/ops/execution/prepare", f.model2, order, "key-1"), http.StatusOK); r.header.Get("Idempotent-Replayed") != "" ||
		r.str("execution_id") == first.str("execution_id") {
		t.Fatalf("expired key replayed: %s", r.raw)
	}
}

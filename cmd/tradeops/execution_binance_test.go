package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/internal/fakebinance"
)

const btcOrder = `{"symbol":"BTCUSDT","side":"BUY","qty":0.01}`

// TestBinanceTestOrderSigned: an HMAC and an Ed25519 key each sign a test
// order the fake verifies (API key header, signature over the body,
// timestamp within recvWindow, symbol and filters); the answer says it was
// validated and not sent to the matching engine; the success event carries
// the mode and the profile the order passed under.
func TestBinanceTestOrderSigned(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})

	f.putBinanceHMAC(f.model2)
	r := f.mustStatus(f.binanceTest(f.model2, btcOrder, ""), http.StatusOK)
	if r.str("status") != "success" || r.str("exchange") != "BINANCE" || r.str("mode") != "testnet" ||
		r.body["validated"] != true || r.body["sent_to_matching_engine"] != false || r.str("execution_id") == "" ||
		!strings.Contains(r.raw, `"exchange_response":{}`) {
		t.Fatalf("HMAC: %s", r.raw)
	}

	pub, privPEM := ed25519PEM(t)
	edKey := alnum(64)
	f.binance.AddEd25519Key(edKey, pub)
	f.putSecret(f.loose, "BINANCE", fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, edKey, privPEM))
	// A LIMIT order inside loose's collar, price as a string.
	f.mustStatus(f.binanceTest(f.loose, `{"symbol":"ETHUSDT","side":"SELL","qty":"0.5","price":"3510.5","order_type":"LIMIT"}`, ""), http.StatusOK)

	if n := f.binance.AcceptedTestOrders(); n != 2 {
		t.Fatalf("the fake accepted %d test orders, want 2", n)
	}
	evs := f.events("execution.")
	if len(evs) != 4 || evs[0].Type != domain.EventExecutionPrepare || evs[1].Type != domain.EventBinanceTestOrderOK || evs[3].Type != domain.EventBinanceTestOrderOK {
		t.Fatalf("events %v", evs)
	}
	ok := evs[1].Data
	if ok["mode"] != "testnet" || ok["profile"] != "model2" || ok["execution_id"] != r.str("execution_id") || evs[1].Stream != evs[0].Stream {
		t.Fatalf("success event %s", evs[1].Raw)
	}
	if evs[3].Data["profile"] != "loose" || evs[3].Data["price"] != "3510.5" || evs[3].Data["order_type"] != "LIMIT" {
		t.Fatalf("Ed25519 event %s", evs[3].Raw)
	}
}

// TestBinanceErrorsThroughTheEndpoint: Binance's real error codes reach the
// caller as binance_rejected with the exchange's code (a JSON number), a 5xx
// as binance_unknown (not rejected), a 429 as 503 binance_rate_limited with
// Retry-After; -1021 is healed by a time sync and one retry. Every failure
// is an execution.binance.test_order.error event with Binance's code.
func TestBinanceErrorsThroughTheEndpoint(t *testing.T) {
	// ETHUSDT's MARKET_LOT_SIZE is tighter than the risk checks look at,
	// so only Binance catches it (-1013).
	symbols := fakebinance.DefaultSymbols()
	for i, f := range symbols[1].Filters {
		if f.Type == "MARKET_LOT_SIZE" {
			symbols[1].Filters[i].Max = "0.001"
		}
	}
	f := newExecFixture(t, fixtureOpts{symbols: symbols})
	sent := func() int { return f.binance.Count("/api/v3/order/test") }

	rejected := []struct {
		name   string
		secret func() string // stores the model2 user's credentials
		code   float64
	}{
		{"-2015 unknown key", func() string {
			f.putSecret(f.model2, "BINANCE", fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, alnum(64), alnum(64)))
			return btcOrder
		}, -2015},
		{"-2014 key format", func() string {
			f.putSecret(f.model2, "BINANCE", `{"api_key":"short-key-1234","api_secret":"whatever-secret"}`)
			return btcOrder
		}, -2014},
		{"-1022 wrong secret", func() string {
			key := alnum(64)
			f.binance.AddHMACKey(key, alnum(64))
			f.putSecret(f.model2, "BINANCE", fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, key, alnum(64)))
			return btcOrder
		}, -1022},
		{"-1013 filter", func() string {
			f.putBinanceHMAC(f.model2)
			return `{"symbol":"ETHUSDT","side":"BUY","qty":0.01}`
		}, -1013},
	}
	for _, c := range rejected {
		before := sent()
		r := f.mustCode(f.binanceTest(f.model2, c.secret(), ""), http.StatusBadGateway, "binance_rejected")
		if r.exchangeCode() != c.code || r.str("status") != "error" || r.str("execution_id") == "" {
			t.Fatalf("%s: %s", c.name, r.raw)
		}
		if sent() != before+1 {
			t.Fatalf("%s: %d test orders sent", c.name, sent()-before)
		}
		evs := f.events(domain.EventBinanceTestOrderErr)
		last := evs[len(evs)-1].Data
		if last["outcome"] != "rejected" || last["exchange_code"] != fmt.Sprint(c.code) || last["exchange_message"] == "" {
			t.Fatalf("%s: event %v", c.name, last)
		}
	}

	// -1021: the server's clock is ahead by more than recvWindow; the client
	// syncs with /api/v3/time and its one retry passes.
	f.binance.SetClockOffset(10 * time.Second)
	before, syncs := sent(), f.binance.Count("/api/v3/time")
	f.mustStatus(f.binanceTest(f.model2, btcOrder, ""), http.StatusOK)
	if sent() != before+2 || f.binance.Count("/api/v3/time") != syncs+1 {
		t.Fatalf("-1021: %d sends, %d syncs", sent()-before, f.binance.Count("/api/v3/time")-syncs)
	}

	// 5xx: the outcome is unknown, and said so.
	f.binance.SetFault(http.StatusInternalServerError, 0)
	r := f.mustCode(f.binanceTest(f.model2, btcOrder, ""), http.StatusBadGateway, "binance_unknown")
	if !strings.Contains(r.raw, "unknown, not rejected") || r.exchangeCode() != float64(-1001) {
		t.Fatalf("5xx: %s", r.raw)
	}
	evs := f.events(domain.EventBinanceTestOrderErr)
	if last := evs[len(evs)-1].Data; last["outcome"] != "unknown" {
		t.Fatalf("5xx event %v", last)
	}

	// 429: 503 with Retry-After; until it passes the client sends nothing,
	// and the same Idempotency-Key works once it has.
	f.binance.SetFault(http.StatusTooManyRequests, time.Second)
	r = f.mustCode(f.binanceTest(f.model2, btcOrder, "after-429"), http.StatusServiceUnavailable, "binance_rate_limited")
	if r.header.Get("Retry-After") != "1" || r.exchangeCode() != float64(-1003) {
		t.Fatalf("429: %v %s", r.header, r.raw)
	}
	f.binance.ClearFault()
	before = sent()
	f.mustCode(f.binanceTest(f.model2, btcOrder, ""), http.StatusServiceUnavailable, "binance_rate_limited")
	if sent() != before {
		t.Fatal("sent during Retry-After")
	}
	time.Sleep(1100 * time.Millisecond)
	f.mustStatus(f.binanceTest(f.model2, btcOrder, "after-429"), http.StatusOK)

	// -1121 is caught when the filters are read: 400, nothing sent or appended.
	before, appended := sent(), len(f.events("execution."))
	f.mustCode(f.binanceTest(f.model2, `{"symbol":"DOGEUSDT","side":"BUY","qty":1}`, ""), http.StatusBadRequest, "unknown_symbol")
	if sent() != before || len(f.events("execution.")) != appended {
		t.Fatal("an unknown symbol was sent or recorded")
	}
}

// TestBinanceTestOrderIdempotent: a repeat with the same key sends nothing
// (the fake counts one order) and returns the first answer; another order
// under the key is 422; a rejected order's 422 is replayed too; a request
// still running holds its key (409 with Retry-After); a key refused for a
// missing secret works once the secret is stored.
func TestBinanceTestOrderIdempotent(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})

	// Refused before anything happened: the key stays free.
	f.mustCode(f.binanceTest(f.model2, btcOrder, "k1"), http.StatusConflict, "secret_missing")
	f.putBinanceHMAC(f.model2)
	first := f.mustStatus(f.binanceTest(f.model2, btcOrder, "k1"), http.StatusOK)
	again := f.mustStatus(f.binanceTest(f.model2, `{"qty":"0.01","symbol":"BTCUSDT","side":"BUY"}`, "k1"), http.StatusOK)
	if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay:\n%s\n%s", first.raw, again.raw)
	}
	if n := f.binance.Count("/api/v3/order/test"); n != 1 {
		t.Fatalf("%d test orders sent, want 1", n)
	}
	f.mustCode(f.binanceTest(f.model2, `{"symbol":"BTCUSDT","side":"SELL","qty":0.01}`, "k1"), http.StatusUnprocessableEntity, "idempotency_key_reused")
	// The key belongs to the test order: prepare cannot reuse it.
	f.mustCode(f.post("/ops/execution/prepare", f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`, "k1"),
		http.StatusUnprocessableEntity, "idempotency_key_reused")

	// A risk rejection is final: 422 with the checks, replayed as such.
	rej := f.mustCode(f.binanceTest(f.model2, `{"symbol":"BTCUSDT","side":"BUY","qty":1}`, "k2"), http.StatusUnprocessableEntity, "risk_rejected")
	if rej.str("decision") != "rejected" || rej.str("risk_profile") != "model2" || !strings.Contains(rej.raw, domain.CheckMaxQty) || rej.str("execution_id") == "" {
		t.Fatalf("risk_rejected: %s", rej.raw)
	}
	if again := f.binanceTest(f.model2, `{"symbol":"BTCUSDT","side":"BUY","qty":1}`, "k2"); again.raw != rej.raw || again.status != rej.status {
		t.Fatalf("rejection replay: %s", again.raw)
	}
	if n := f.binance.Count("/api/v3/order/test"); n != 1 {
		t.Fatalf("%d test orders sent, want 1 (a rejected order is never sent)", n)
	}

	// Two at once with one key: one runs, the other is told to retry.
	f.binance.SetLatency(500 * time.Millisecond)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	headers := make([]http.Header, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 150 * time.Millisecond)
			statuses[i], headers[i], _, _ = rawPost(context.Background(), t, f.base+"/ops/execution/binance/test-order", f.model2, btcOrder,
				http.Header{"Idempotency-Key": {"k3"}})
		}()
	}
	wg.Wait()
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusConflict || headers[1].Get("Retry-After") == "" {
		t.Fatalf("concurrent repeat: %v", statuses)
	}
	if n := f.binance.Count("/api/v3/order/test"); n != 2 {
		t.Fatalf("%d test orders sent, want 2", n)
	}
}

// TestTestOrderRecordedWhenTheClientHangsUp: the command runs on after the
// client gives up, so an order that was sent is recorded.
func TestTestOrderRecordedWhenTheClientHangsUp(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})
	f.putBinanceHMAC(f.model2)
	f.binance.SetLatency(400 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, _, err := rawPost(ctx, t, f.base+"/ops/execution/binance/test-order", f.model2, btcOrder, nil); err == nil {
		t.Fatal("the request finished before the client gave up")
	}
	for deadline := time.Now().Add(5 * time.Second); len(f.events(domain.EventBinanceTestOrderOK)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sent test order was never recorded")
		}
	}
	if n := f.binance.AcceptedTestOrders(); n != 1 {
		t.Fatalf("%d accepted", n)
	}
}

// TestBinanceLiveOnlyWithTheFlag: BINANCE_BASE_URL alone changes nothing
// (testnet); with BINANCE_LIVE_ENABLED=true test orders go there, mode live.
func TestBinanceLiveOnlyWithTheFlag(t *testing.T) {
	live := fakebinance.New(fakebinance.Options{T: t})
	f := newExecFixture(t, fixtureOpts{env: map[string]string{"BINANCE_BASE_URL": live.URL()}})
	apiKey, secret := f.putBinanceHMAC(f.model2)
	live.AddHMACKey(apiKey, secret)
	if r := f.mustStatus(f.binanceTest(f.model2, btcOrder, ""), http.StatusOK); r.str("mode") != "testnet" {
		t.Fatalf("without the flag: %s", r.raw)
	}
	if live.Count("/api/v3/order/test") != 0 || f.binance.AcceptedTestOrders() != 1 {
		t.Fatal("live Binance was called without BINANCE_LIVE_ENABLED")
	}
	f.env["BINANCE_LIVE_ENABLED"] = "true"
	f.serve(f.key)
	f.model2 = f.login("model2@x.test", testPassword, "")
	if r := f.mustStatus(f.binanceTest(f.model2, btcOrder, ""), http.StatusOK); r.str("mode") != "live" {
		t.Fatalf("with the flag: %s", r.raw)
	}
	if live.AcceptedTestOrders() != 1 || f.binance.AcceptedTestOrders() != 1 {
		t.Fatal("the live test order did not go to BINANCE_BASE_URL")
	}
	evs := f.events(domain.EventBinanceTestOrderOK)
	if evs[len(evs)-1].Data["mode"] != "live" {
		t.Fatalf("event %s", evs[len(evs)-1].Raw)
	}
}

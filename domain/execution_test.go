package domain_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tradeops/tradeops/domain"
)

func TestExecutionPreparedPayload(t *testing.T) {
	order := mustOrder(t, "binance", "btcusdt", "0.0100", "", "")
	ref := mustPrice(t, "250000.00")
	decision := domain.Evaluate(domain.RulesFor(domain.RiskProfileModel2), order, ref, btcFilters, domain.DailyUsage{Orders: 50})
	shadow := domain.Evaluate(domain.RulesFor(domain.RiskProfileLoose), order, ref, btcFilters, domain.DailyUsage{Orders: 50})
	// 01:30 in UTC+2 is still the previous day in UTC.
	at := time.Date(2026, 3, 1, 1, 30, 0, 0, time.FixedZone("EET", 2*3600))

	ev := domain.NewExecutionPrepared("e1", "u1", order, ref, decision, shadow, true, at)
	if ev.Type != domain.EventExecutionPrepare || ev.SchemaVersion != 1 {
		t.Fatalf("%s v%d", ev.Type, ev.SchemaVersion)
	}
	got, err := json.Marshal(ev.Data)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"execution_id":"e1","user_id":"u1","exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","order_type":"MARKET",` +
		`"qty":"0.01","reference_price":"250000","notional":"2500","profile":"model2","decision":"rejected",` +
		`"failed_checks":["RISK_DAILY_ORDER_COUNT"],"shadow":{"profile":"loose","decision":"accepted","failed_checks":[]},` +
		`"secret_configured":true,"day":"2026-02-28"}`
	if string(got) != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}

	limit := mustOrder(t, "IBKR", "AAPL", "2", "190.10", "LIMIT")
	dec := domain.Evaluate(domain.RulesFor(domain.RiskProfileLoose), limit, mustPrice(t, "190"), domain.SymbolFilters{}, domain.DailyUsage{})
	got, _ = json.Marshal(domain.NewExecutionPrepared("e2", "u1", limit, mustPrice(t, "190"), dec, dec, false, at).Data)
	if !strings.Contains(string(got), `"order_type":"LIMIT","qty":"2","price":"190.1","reference_price":"190","notional":"380.2"`) {
		t.Fatalf("LIMIT payload %s", got)
	}
}

func TestTestOrderEventsFollowTheExchange(t *testing.T) {
	at := time.Date(2026, 3, 1, 23, 59, 59, 0, time.UTC)
	binance := mustOrder(t, "BINANCE", "BTCUSDT", "0.01", "", "")
	ibkr := mustOrder(t, "IBKR", "AAPL", "1", "", "")

	for _, tc := range []struct {
		ev   domain.Event
		typ  string
		want string
	}{
		{domain.NewTestOrderSucceeded("e1", "u1", binance, domain.TestOrderModeTestnet, domain.RiskProfileModel2, at), domain.EventBinanceTestOrderOK,
			`{"execution_id":"e1","user_id":"u1","symbol":"BTCUSDT","side":"BUY","order_type":"MARKET","qty":"0.01","mode":"testnet","profile":"model2","day":"2026-03-01"}`},
		{domain.NewTestOrderSucceeded("e2", "u1", ibkr, domain.TestOrderModeSimulated, domain.RiskProfileModel2, at), domain.EventIBKRTestOrderOK,
			`{"execution_id":"e2","user_id":"u1","symbol":"AAPL","side":"BUY","order_type":"MARKET","qty":"1","mode":"simulated","profile":"model2","day":"2026-03-01"}`},
		{domain.NewTestOrderFailed("e3", "u1", binance, domain.TestOrderModeLive, domain.RiskProfileModel2, domain.TestOrderRejected, "-2015", "Invalid API-key, IP, or permissions for action.", at), domain.EventBinanceTestOrderErr,
			`{"execution_id":"e3","user_id":"u1","symbol":"BTCUSDT","side":"BUY","order_type":"MARKET","qty":"0.01","mode":"live","profile":"model2","outcome":"rejected","exchange_code":"-2015","exchange_message":"Invalid API-key, IP, or permissions for action.","day":"2026-03-01"}`},
		{domain.NewTestOrderFailed("e4", "u1", ibkr, domain.TestOrderModePaper, domain.RiskProfileModel2, domain.TestOrderUnknown, "", "", at), domain.EventIBKRTestOrderErr,
			`{"execution_id":"e4","user_id":"u1","symbol":"AAPL","side":"BUY","order_type":"MARKET","qty":"1","mode":"paper","profile":"model2","outcome":"unknown","day":"2026-03-01"}`},
	} {
		got, err := json.Marshal(tc.ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		if tc.ev.Type != tc.typ || tc.ev.SchemaVersion != 1 || string(got) != tc.want {
			t.Errorf("%s v%d %s\nwant %s %s", tc.ev.Type, tc.ev.SchemaVersion, got, tc.typ, tc.want)
		}
	}
}

// A gateway's error page must not bloat the event stream, and cutting it
// must not split a character.
func TestTestOrderFailedBoundsTheExchangeMessage(t *testing.T) {
	order := mustOrder(t, "IBKR", "AAPL", "1", "", "")
	msg := strings.Repeat("a", 511) + "é" + strings.Repeat("b", 1000) + "\xff"
	ev := domain.NewTestOrderFailed("e", "u", order, domain.TestOrderModePaper, domain.RiskProfileModel2, domain.TestOrderUnknown, "502", msg, time.Now())
	got := ev.Data.(domain.TestOrderFailed).ExchangeMessage
	if got != strings.Repeat("a", 511) || !utf8.ValidString(got) {
		t.Fatalf("kept %d bytes: %q…", len(got), got[len(got)-4:])
	}
	short := domain.NewTestOrderFailed("e", "u", order, domain.TestOrderModePaper, domain.RiskProfileModel2, domain.TestOrderUnknown, "502", "bad\xffgateway", time.Now())
	if got := short.Data.(domain.TestOrderFailed).ExchangeMessage; got != "bad\uFFFDgateway" {
		t.Fatalf("%q", got)
	}
}

func TestUTCDay(t *testing.T) {
	if got := domain.UTCDay(time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("X", 3600))); got != "2025-12-31" {
		t.Fatal(got)
	}
	if domain.ExecutionStream("abc") != "execution-abc" {
		t.Fatal(domain.ExecutionStream("abc"))
	}
}

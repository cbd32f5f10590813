package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
	porthttp "github.com/tradeops/tradeops/ports/http"
	"github.com/tradeops/tradeops/projections"
)

// The runbook's daily comparison, through real HTTP with the real auth
// middleware, over the read model the live runner keeps: the exact shape,
// every day of the range with both profiles, admins only, bad ranges
// refused without writing anything, and the same answer after
// `tradeops projections rebuild daily_risk_compare`.
func TestDailyRiskCompareEndpoint(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	store := eventstore.New(h.pool)
	srv := httptest.NewServer(porthttp.NewHandler(porthttp.Options{
		Version: "test", Health: h.pool, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Classify: postgres.Classify,
	}, h.id.routes, riskRoutes(store, h.id.auth, h.clock)))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	h.createUser("admin@example.com", "admin", "correct horse battery")
	h.createUser("op@example.com", "operator", "correct horse battery")
	admin := h.mustLogin("admin@example.com", "correct horse battery", "")
	operator := h.mustLogin("op@example.com", "correct horse battery", "")

	now := h.clock.Now().UTC()
	today, twoDaysAgo := domain.UTCDay(now), domain.UTCDay(now.AddDate(0, 0, -2))
	appendExecutions(t, store, now)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		projections.NewRunner(h.pool, store, projections.All(), projections.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil)))).Run(ctx)
	}()
	waitLive(t, h)
	stop()
	<-done

	r := h.do(http.MethodGet, "/ops/risk/daily-compare", "", "", admin, "")
	if r.status != http.StatusOK {
		t.Fatalf("admin: %d %s", r.status, r.raw)
	}
	live := r.raw
	var rep struct {
		From, To string
		Days     []map[string]any
	}
	if err := json.Unmarshal([]byte(r.raw), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.From != domain.UTCDay(now.AddDate(0, 0, -6)) || rep.To != today || len(rep.Days) != 7 {
		t.Fatalf("default range: %s", r.raw)
	}
	zero := `{"prepares":0,"accepted":0,"rejected":0,"rejected_by_check":{},"notional_requested":"0","notional_accepted":"0",
		"test_orders":{"binance":{"ok":0,"error":0},"ibkr":{"ok":0,"error":0}},"divergent":0}`
	want := map[string]string{
		today: `{"date":"` + today + `","divergent_decisions":1,"profiles":{
			"model2":{"prepares":3,"accepted":2,"rejected":1,"rejected_by_check":{"RISK_MAX_NOTIONAL":1,"EXCHANGE_LOT_SIZE":1},
				"notional_requested":"9000.3","notional_accepted":"0.3",
				"test_orders":{"binance":{"ok":2,"error":1},"ibkr":{"ok":0,"error":0}},"divergent":1},
			"loose":` + zero + `}}`,
		twoDaysAgo: `{"date":"` + twoDaysAgo + `","divergent_decisions":1,"profiles":{"model2":` + zero + `,
			"loose":{"prepares":1,"accepted":1,"rejected":0,"rejected_by_check":{},"notional_requested":"100","notional_accepted":"100",
				"test_orders":{"binance":{"ok":0,"error":0},"ibkr":{"ok":1,"error":1}},"divergent":1}}}`,
	}
	for i, d := range rep.Days {
		date := domain.UTCDay(now.AddDate(0, 0, i-6)) // oldest first
		w, ok := want[date]
		if !ok {
			w = `{"date":"` + date + `","divergent_decisions":0,"profiles":{"model2":` + zero + `,"loose":` + zero + `}}`
		}
		var wd map[string]any
		if err := json.Unmarshal([]byte(w), &wd); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, wd) {
			got, _ := json.Marshal(d)
			t.Errorf("day %d:\n got %s\nwant %s", i, got, w)
		}
	}

	r = h.do(http.MethodGet, "/ops/risk/daily-compare?from="+twoDaysAgo+"&to="+twoDaysAgo, "", "", admin, "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.raw, `{"from":"`+twoDaysAgo+`","to":"`+twoDaysAgo+`","days":[{"date":"`+twoDaysAgo+`"`) ||
		strings.Count(r.raw, `"date"`) != 1 || !strings.Contains(r.raw, `"notional_accepted":"100"`) {
		t.Fatalf("one day: %d %s", r.status, r.raw)
	}

	before := h.eventCount()
	wantError(t, h.do(http.MethodGet, "/ops/risk/daily-compare", "", "", operator, ""), http.StatusForbidden, "forbidden")
	wantError(t, h.do(http.MethodGet, "/ops/risk/daily-compare", "", "", "", ""), http.StatusUnauthorized, "unauthorized")
	for _, q := range []string{"from=2026-13-01", "to=2026-02-30", "from=01/12/2026", "from=2026-12-01T00:00:00Z"} {
		wantError(t, h.do(http.MethodGet, "/ops/risk/daily-compare?"+q, "", "", admin, ""), http.StatusBadRequest, "invalid_date")
	}
	for _, q := range []string{"from=2026-12-02&to=2026-12-01", "from=2025-01-01&to=2026-01-02"} {
		wantError(t, h.do(http.MethodGet, "/ops/risk/daily-compare?"+q, "", "", admin, ""), http.StatusBadRequest, "invalid_range")
	}
	if h.eventCount() != before {
		t.Fatal("a refused query wrote events")
	}

	out, errOut, code := cli(t, h.dbURL, "projections", "rebuild", "daily_risk_compare", "--batch", "2")
	if code != 0 || !strings.Contains(out, "daily_risk_compare: rebuilt ") {
		t.Fatalf("rebuild: %d %s %s", code, out, errOut)
	}
	if again := h.do(http.MethodGet, "/ops/risk/daily-compare", "", "", admin, ""); again.status != http.StatusOK || again.raw != live {
		t.Fatalf("after the rebuild:\n%s\nbefore:\n%s", again.raw, live)
	}
}

// appendExecutions appends, as the execution handlers do: today, three
// model2 prepares (0.1 and 0.2 accepted, 9000 rejected by two checks where
// loose would have accepted it) and three Binance test orders; two days
// ago, a loose prepare model2 would have rejected and two IBKR test orders.
func appendExecutions(t *testing.T, store *eventstore.Store, now time.Time) {
	t.Helper()
	order := func(exchange, symbol string) domain.OrderRequest {
		o, err := domain.NewOrderRequest(exchange, symbol, "BUY", "0.01", "", "")
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	btc, aapl := order("BINANCE", "BTCUSDT"), order("IBKR", "AAPL")
	dec := func(p domain.RiskProfile, notional string, failed ...string) domain.Decision {
		d := domain.Decision{Profile: p, Outcome: domain.DecisionAccepted, Notional: decimal.RequireFromString(notional)}
		for _, c := range failed {
			d.Outcome, d.Checks = domain.DecisionRejected, append(d.Checks, domain.Check{Code: c})
		}
		return d
	}
	price, _ := domain.ParsePrice("60000")
	m2, loose := domain.RiskProfileModel2, domain.RiskProfileLoose
	earlier := now.AddDate(0, 0, -2)
	for _, ev := range []domain.Event{
		domain.NewExecutionPrepared("e1", "u", btc, price, dec(m2, "0.1"), dec(loose, "0.1"), true, now),
		domain.NewExecutionPrepared("e2", "u", btc, price, dec(m2, "0.2"), dec(loose, "0.2"), true, now),
		domain.NewExecutionPrepared("e3", "u", btc, price, dec(m2, "9000", domain.CheckMaxNotional, domain.CheckExchangeLotSize), dec(loose, "9000"), true, now),
		domain.NewTestOrderSucceeded("e1", "u", btc, domain.TestOrderModeTestnet, m2, now),
		domain.NewTestOrderSucceeded("e2", "u", btc, domain.TestOrderModeTestnet, m2, now),
		domain.NewTestOrderFailed("e4", "u", btc, domain.TestOrderModeTestnet, m2, domain.TestOrderUnknown, "", "timeout", now),
		domain.NewExecutionPrepared("e5", "v", btc, price, dec(loose, "100"), dec(m2, "100", domain.CheckMaxQty), false, earlier),
		domain.NewTestOrderSucceeded("e6", "v", aapl, domain.TestOrderModeSimulated, loose, earlier),
		domain.NewTestOrderFailed("e7", "v", aapl, domain.TestOrderModeSimulated, loose, domain.TestOrderRejected, "", "no", earlier),
	} {
		b, err := json.Marshal(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(context.Background(), domain.ExecutionStream("test"), eventstore.Any, eventstore.Metadata{ActorID: "u"},
			eventstore.NewEvent{Type: ev.Type, SchemaVersion: ev.SchemaVersion, Data: b}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLive waits until every projection has applied every event.
func waitLive(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := eventgen.WaitVisible(ctx, h.pool); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		statuses, err := projections.ReadStatus(ctx, h.pool, projections.All())
		if err != nil {
			t.Fatal(err)
		}
		live := true
		for _, s := range statuses {
			live = live && s.State == "live"
		}
		if live {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the projections did not catch up")
}

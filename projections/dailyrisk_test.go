package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// appendDomain appends a domain event through the store, as the execution
// handlers do.
func (e testEnv) appendDomain(t testing.TB, actor string, ev domain.Event) {
	t.Helper()
	b, err := json.Marshal(ev.Data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Append(context.Background(), domain.ExecutionStream("test"), eventstore.Any,
		eventstore.Metadata{ActorID: actor}, eventstore.NewEvent{Type: ev.Type, SchemaVersion: ev.SchemaVersion, Data: b}); err != nil {
		t.Fatal(err)
	}
}

// drainIn applies every event up to the head to p in batches of size, as
// the live runner does.
func (e testEnv) drainIn(t testing.TB, p Projection, size int) {
	t.Helper()
	e.waitVisible(t)
	r := NewRunner(e.pool, e.store, []Projection{p}, WithBatchSize(size))
	if err := ensureCheckpoint(context.Background(), e.pool, p); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := r.step(context.Background(), p)
		if err != nil {
			t.Fatalf("drain %s: %v", p.Name(), err)
		}
		if n < size {
			return
		}
	}
}

func decision(profile domain.RiskProfile, notional string, failed ...string) domain.Decision {
	d := domain.Decision{Profile: profile, Outcome: domain.DecisionAccepted, Notional: decimal.RequireFromString(notional)}
	for _, code := range failed {
		d.Outcome = domain.DecisionRejected
		d.Checks = append(d.Checks, domain.Check{Code: code})
	}
	return d
}

var (
	riskDay1 = time.Date(2025, 6, 1, 23, 59, 59, 999e6, time.UTC)
	riskDay2 = riskDay1.Add(time.Millisecond) // the next UTC day
	btc      = mustOrder("BINANCE", "BTCUSDT")
	aapl     = mustOrder("IBKR", "AAPL")
)

func mustOrder(exchange, symbol string) domain.OrderRequest {
	o, err := domain.NewOrderRequest(exchange, symbol, "BUY", "0.01", "", "")
	if err != nil {
		panic(err)
	}
	return o
}

// appendRiskDays appends executions over two UTC days, with unrelated
// events between them, and returns what the read model must hold.
func appendRiskDays(t *testing.T, env testEnv) map[string]app.DailyRiskCounts {
	t.Helper()
	m2, loose := domain.RiskProfileModel2, domain.RiskProfileLoose
	prepare := func(at time.Time, d, shadow domain.Decision) {
		price, _ := domain.ParsePrice("60000")
		env.appendDomain(t, "u-"+string(d.Profile), domain.NewExecutionPrepared("x", "u-"+string(d.Profile), btc, price, d, shadow, true, at))
	}
	ok := func(o domain.OrderRequest, p domain.RiskProfile, at time.Time) {
		env.appendDomain(t, "u", domain.NewTestOrderSucceeded("x", "u", o, domain.TestOrderModeSimulated, p, at))
	}
	failed := func(o domain.OrderRequest, p domain.RiskProfile, at time.Time) {
		env.appendDomain(t, "u", domain.NewTestOrderFailed("x", "u", o, domain.TestOrderModeTestnet, p, domain.TestOrderRejected, "-2015", "no", at))
	}
	unrelated := func() {
		env.appendOne(t, "user-u", "u", domain.EventLoginSuccess, map[string]any{"method": "password"})
	}

	prepare(riskDay1, decision(m2, "0.1"), decision(loose, "0.1"))
	unrelated()
	prepare(riskDay1, decision(m2, "0.2"), decision(loose, "0.2"))
	prepare(riskDay1, decision(m2, "5000", domain.CheckMaxNotional, domain.CheckExchangeLotSize), decision(loose, "5000"))
	ok(btc, m2, riskDay1)
	prepare(riskDay1, decision(m2, "7000.5", domain.CheckMaxNotional), decision(loose, "7000.5", domain.CheckDailyNotional))
	unrelated()
	ok(btc, m2, riskDay1)
	failed(btc, m2, riskDay1)
	ok(aapl, m2, riskDay1)
	prepare(riskDay1, decision(loose, "100"), decision(m2, "100", domain.CheckMaxQty))
	failed(aapl, loose, riskDay1)
	prepare(riskDay2, decision(m2, "1.50"), decision(loose, "1.50"))
	unrelated()

	return map[string]app.DailyRiskCounts{
		"2025-06-01/model2": {Prepares: 4, Accepted: 2, Rejected: 2,
			RejectedByCheck:   map[string]int64{domain.CheckMaxNotional: 2, domain.CheckExchangeLotSize: 1},
			NotionalRequested: "12000.8", NotionalAccepted: "0.3", BinanceOK: 2, BinanceError: 1, IBKROK: 1, Divergent: 1},
		"2025-06-01/loose": {Prepares: 1, Accepted: 1, RejectedByCheck: map[string]int64{},
			NotionalRequested: "100", NotionalAccepted: "100", IBKRError: 1, Divergent: 1},
		"2025-06-02/model2": {Prepares: 1, Accepted: 1, RejectedByCheck: map[string]int64{},
			NotionalRequested: "1.5", NotionalAccepted: "1.5"},
	}
}

// readRisk reads the read model through the endpoint's reader, keyed
// "day/profile".
func readRisk(t *testing.T, env testEnv, from, to string) map[string]app.DailyRiskCounts {
	t.Helper()
	f, _ := time.Parse(time.DateOnly, from)
	u, _ := time.Parse(time.DateOnly, to)
	rows, err := NewDailyRiskReader(env.pool).DailyRisk(context.Background(), f, u)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]app.DailyRiskCounts{}
	for _, r := range rows {
		out[r.Day.Format(time.DateOnly)+"/"+string(r.Profile)] = r.DailyRiskCounts
	}
	return out
}

func assertRisk(t *testing.T, got, want map[string]app.DailyRiskCounts) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	for k, w := range want {
		g := got[k]
		if !maps.Equal(g.RejectedByCheck, w.RejectedByCheck) {
			t.Errorf("%s: rejected by check %v, want %v", k, g.RejectedByCheck, w.RejectedByCheck)
		}
		g.RejectedByCheck, w.RejectedByCheck = nil, nil
		if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", w) {
			t.Errorf("%s:\n got %+v\nwant %+v", k, g, w)
		}
	}
}

// The counters are exact whatever the batch boundaries — one day's events
// spread over many batches — and notionals add up as decimals (0.1 + 0.2 is
// 0.3, not 0.30000000000000004). Generated traffic of every kind around
// them is read (its prepares and test orders too) without a quarantine.
func TestDailyRiskCompareCounts(t *testing.T) {
	for _, size := range []int{1, 3, 1000} {
		t.Run(fmt.Sprint("batch ", size), func(t *testing.T) {
			env := newEnv(t)
			want := appendRiskDays(t, env)
			env.drainIn(t, DailyRiskCompare{}, size)
			assertRisk(t, readRisk(t, env, "2025-05-31", "2025-06-02"), want)
			delete(want, "2025-06-02/model2")
			assertRisk(t, readRisk(t, env, "2025-06-01", "2025-06-01"), want)
		})
	}
}

// Rebuilding by replay gives the live read model row for row, and the live
// runner then goes on from where the rebuild stopped: nothing applied twice,
// nothing lost.
func TestDailyRiskCompareRebuildEqualsLive(t *testing.T) {
	env := newEnv(t)
	env.seed(t, 4000)
	want := appendRiskDays(t, env)
	env.seed(t, 1000)
	env.drainIn(t, DailyRiskCompare{}, 7)
	if n := env.count(t, `SELECT count(*) FROM projection_quarantine`); n != 0 {
		t.Fatalf("%d generated events quarantined", n)
	}
	if n := env.count(t, `SELECT sum(prepares) + sum(binance_ok) FROM daily_risk_compare WHERE day < '2025-01-01' OR day > '2025-12-31'`); n != 2500 {
		t.Fatalf("the generated prepares and test orders count %d, want 2500", n)
	}
	if n := env.count(t, `SELECT sum(rejected) FROM daily_risk_compare_checks WHERE code = 'RISK_DAILY_ORDER_COUNT'`); n == 0 {
		t.Fatal("no generated rejection counted")
	}
	env.exec(t, `CREATE TABLE daily_risk_compare_live AS SELECT * FROM daily_risk_compare`)
	env.exec(t, `CREATE TABLE daily_risk_compare_checks_live AS SELECT * FROM daily_risk_compare_checks`)

	if _, err := Rebuild(context.Background(), env.pool, env.store, DailyRiskCompare{}, RebuildOptions{BatchSize: 500}); err != nil {
		t.Fatal(err)
	}
	env.assertSameRows(t, "daily_risk_compare", "daily_risk_compare_live")
	env.assertSameRows(t, "daily_risk_compare_checks", "daily_risk_compare_checks_live")
	assertRisk(t, readRisk(t, env, "2025-06-01", "2025-06-02"), want)
	for _, tbl := range []string{"daily_risk_compare_shadow", "daily_risk_compare_old", "daily_risk_compare_checks_shadow", "daily_risk_compare_checks_old"} {
		if n := env.count(t, `SELECT count(*) FROM pg_class WHERE relname = $1`, tbl); n != 0 {
			t.Fatalf("%s left behind", tbl)
		}
	}

	env.drainIn(t, DailyRiskCompare{}, 1000)
	env.assertSameRows(t, "daily_risk_compare", "daily_risk_compare_live")
	price, _ := domain.ParsePrice("60000")
	env.appendDomain(t, "u", domain.NewExecutionPrepared("x", "u", btc, price,
		decision(domain.RiskProfileModel2, "0.7"), decision(domain.RiskProfileLoose, "0.7"), true, riskDay2))
	env.drainIn(t, DailyRiskCompare{}, 1000)
	m := want["2025-06-02/model2"]
	m.Prepares, m.Accepted, m.NotionalRequested, m.NotionalAccepted = 2, 2, "2.2", "2.2"
	want["2025-06-02/model2"] = m
	assertRisk(t, readRisk(t, env, "2025-06-01", "2025-06-02"), want)
}

// A relevant event whose payload the projection cannot count is quarantined;
// the projection goes on with the rest of the batch and stays live.
func TestDailyRiskComparePoisonIsQuarantined(t *testing.T) {
	env := newEnv(t)
	want := appendRiskDays(t, env)
	good := map[string]any{"profile": "model2", "decision": "accepted", "failed_checks": []string{}, "notional": "1", "day": "2025-06-02",
		"shadow": map[string]any{"profile": "loose", "decision": "accepted", "failed_checks": []string{}}}
	with := func(k string, v any) map[string]any {
		m := maps.Clone(good)
		m[k] = v
		return m
	}
	poisons := []struct {
		typ  string
		data any
	}{
		{domain.EventExecutionPrepare, with("profile", "yolo")},
		{domain.EventExecutionPrepare, with("notional", "NaN")},
		{domain.EventExecutionPrepare, with("notional", "-1")},
		{domain.EventExecutionPrepare, with("notional", 1.5)},
		{domain.EventExecutionPrepare, with("day", "2025-06-31")},
		{domain.EventExecutionPrepare, with("decision", "maybe")},
		{domain.EventExecutionPrepare, with("failed_checks", []string{"RISK_MAX_QTY"})}, // accepted, yet a check failed
		{domain.EventExecutionPrepare, with("shadow", map[string]any{"decision": ""})},
		{domain.EventExecutionPrepare, nil},
		{domain.EventBinanceTestOrderOK, map[string]any{"profile": "model2"}}, // no day
		{domain.EventIBKRTestOrderErr, []int{1}},
	}
	for _, p := range poisons {
		env.appendOne(t, "execution-poison", "u", p.typ, p.data)
	}
	env.appendOne(t, "execution-good", "u", domain.EventExecutionPrepare, good)
	env.drainIn(t, DailyRiskCompare{}, 1000)

	if n := env.count(t, `SELECT count(*) FROM projection_quarantine WHERE projection = 'daily_risk_compare' AND NOT shadow`); n != int64(len(poisons)) {
		t.Fatalf("%d events quarantined, want %d", n, len(poisons))
	}
	m := want["2025-06-02/model2"]
	m.Prepares, m.Accepted, m.NotionalRequested, m.NotionalAccepted = 2, 2, "2.5", "2.5"
	want["2025-06-02/model2"] = m
	assertRisk(t, readRisk(t, env, "2025-06-01", "2025-06-02"), want)
	s, err := ReadStatus(context.Background(), env.pool, []Projection{DailyRiskCompare{}})
	if err != nil || s[0].State != "live" || s[0].Quarantined != int64(len(poisons)) {
		t.Fatalf("status %+v %v", s, err)
	}
}

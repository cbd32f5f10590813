package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

// TestKillSwitch: an admin engages the kill switch and the very next
// decision of a user whose state the server remembers is rejected under
// both profiles (RISK_KILL_SWITCH): prepares answer rejected, test orders
// 422 with nothing sent. Releasing lets orders through again. Each change
// is one event with its reason; setting the switch where it is records
// nothing; operators may neither read nor move it; bad bodies write
// nothing.
func TestKillSwitch(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})
	f.createUser("admin@x.test", "admin", testPassword)
	admin := f.login("admin@x.test", testPassword, "")
	f.putBinanceHMAC(f.model2)
	const order = `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`
	const testOrder = `{"symbol":"BTCUSDT","side":"BUY","qty":0.01}`
	ks := func(token, body string) apiResponse {
		t.Helper()
		if body == "" {
			return f.call(http.MethodGet, "/ops/risk/kill-switch", token, "")
		}
		return f.call(http.MethodPut, "/ops/risk/kill-switch", token, body)
	}

	r := f.mustStatus(ks(admin, ""), http.StatusOK)
	if r.body["engaged"] != false || r.body["changed_by"] != nil || r.body["changed_at"] != nil {
		t.Fatalf("initial: %s", r.raw)
	}
	// Twice, so that the second decision is made on the remembered state.
	for range 2 {
		if r := f.mustStatus(f.prepare(f.model2, order), http.StatusOK); r.str("decision") != "accepted" {
			t.Fatalf("before: %s", r.raw)
		}
	}

	f.mustStatus(ks(f.model2, ""), http.StatusForbidden)
	f.mustStatus(ks(f.model2, `{"engaged":true,"reason":"x"}`), http.StatusForbidden)
	for body, code := range map[string]string{
		`{"reason":"no engaged"}`:         "missing_engaged",
		`{"engaged":true}`:                "invalid_reason",
		`{"engaged":true,"reason":"   "}`: "invalid_reason",
		`{"engaged":true,"reason":"` + strings.Repeat("r", 1001) + `"}`: "invalid_reason",
		`{"engaged":true,"reason":"a\u0000b"}`:                          "invalid_encoding",
		`{"engaged":"yes","reason":"x"}`:                                "invalid_field",
	} {
		f.mustCode(ks(admin, body), http.StatusBadRequest, code)
	}
	if evs := f.events("risk.kill_switch."); len(evs) != 0 {
		t.Fatalf("bad requests recorded %d events", len(evs))
	}

	r = f.mustStatus(ks(admin, `{"engaged":true,"reason":"exchange incident INC-42"}`), http.StatusOK)
	if r.body["engaged"] != true || r.str("reason") != "exchange incident INC-42" || r.str("changed_by") == "" || r.str("changed_at") == "" {
		t.Fatalf("engaged: %s", r.raw)
	}
	// Again: no change, the first reason stands.
	if r := f.mustStatus(ks(admin, `{"engaged":true,"reason":"again"}`), http.StatusOK); r.str("reason") != "exchange incident INC-42" {
		t.Fatalf("engaged twice: %s", r.raw)
	}
	for _, tok := range []string{f.model2, f.loose} {
		r := f.mustStatus(f.prepare(tok, order), http.StatusOK)
		shadow := r.body["shadow"].(map[string]any)
		if r.str("decision") != "rejected" || shadow["decision"] != "rejected" || !slices.Contains(failedCodes(r), domain.CheckKillSwitch) {
			t.Fatalf("halted prepare: %s", r.raw)
		}
	}
	f.mustCode(f.binanceTest(f.model2, testOrder, ""), http.StatusUnprocessableEntity, "risk_rejected")
	f.mustCode(f.ibkrTest(f.model2, `{"symbol":"AAPL","side":"BUY","qty":1}`, ""), http.StatusUnprocessableEntity, "risk_rejected")
	if n := f.binance.Count("/api/v3/order/test"); n != 0 {
		t.Fatalf("%d test orders sent while halted", n)
	}

	r = f.mustStatus(ks(admin, `{"engaged":false,"reason":"INC-42 resolved"}`), http.StatusOK)
	if r.body["engaged"] != false || r.str("reason") != "INC-42 resolved" {
		t.Fatalf("released: %s", r.raw)
	}
	if r := f.mustStatus(f.prepare(f.model2, order), http.StatusOK); r.str("decision") != "accepted" {
		t.Fatalf("after release: %s", r.raw)
	}
	f.mustStatus(f.binanceTest(f.model2, testOrder, ""), http.StatusOK)

	evs := f.events("risk.kill_switch.")
	if len(evs) != 2 || evs[0].Type != domain.EventKillSwitchEngaged || evs[1].Type != domain.EventKillSwitchReleased ||
		evs[0].Stream != domain.KillSwitchStream || evs[0].Data["reason"] != "exchange incident INC-42" || !strings.Contains(evs[0].Metadata, "admin@x.test") {
		t.Fatalf("events %+v", evs)
	}
}

// failedCodes are the codes of a prepare's failed checks.
func failedCodes(r apiResponse) []string {
	var out []string
	for _, c := range r.body["checks"].([]any) {
		if m := c.(map[string]any); m["passed"] != true {
			out = append(out, m["code"].(string))
		}
	}
	return out
}

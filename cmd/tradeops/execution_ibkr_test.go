package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/internal/fakeibkr"
)

const aaplOrder = `{"symbol":"AAPL","side":"BUY","qty":1}`

// TestIBKRTestOrdersThroughTheGateway: with IBKR_BRIDGE_BASE_URL set the
// what-if goes to the Client Portal gateway (self-signed TLS accepted by
// IBKR_BRIDGE_INSECURE_TLS) for the account in the user's secret; IBKR's
// preview, its warn and its error shapes, a lost session, a gateway 5xx and
// a live account without IBKR_LIVE_ENABLED each give their answer. The
// order-placing endpoint is never called (the fake fails the test).
func TestIBKRTestOrdersThroughTheGateway(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{gateway: true})
	whatIfs := func() int { return f.gateway.Calls(fakeibkr.WhatIf) }

	// A gateway needs the user's account: no simulated stand-in.
	f.mustCode(f.ibkrTest(f.model2, aaplOrder, ""), http.StatusConflict, "secret_missing")
	f.putSecret(f.model2, "IBKR", `{"account_id":"`+fakeibkr.PaperAccount+`"}`)

	r := f.mustStatus(f.ibkrTest(f.model2, aaplOrder, ""), http.StatusOK)
	preview, _ := r.body["preview"].(map[string]any)
	amount, _ := preview["amount"].(map[string]any)
	if r.str("mode") != "paper" || r.str("exchange") != "IBKR" || r.body["sent_to_matching_engine"] != false ||
		preview["conid"] != "265598" || amount["commission"] == nil || preview["initial"] == nil || preview["maintenance"] == nil || preview["equity"] == nil {
		t.Fatalf("preview: %s", r.raw)
	}
	if f.gateway.Calls(fakeibkr.AuthStatus) == 0 || f.gateway.Calls(fakeibkr.Search) == 0 || whatIfs() != 1 {
		t.Fatalf("gateway calls: auth %d, search %d, whatif %d", f.gateway.Calls(fakeibkr.AuthStatus), f.gateway.Calls(fakeibkr.Search), whatIfs())
	}
	if strings.Contains(r.raw, fakeibkr.PaperAccount) {
		t.Fatal("the response shows the account id")
	}

	// A what-if with a warning is a preview all the same.
	f.gateway.AnswerWhatIf(http.StatusOK, `{"amount":{"amount":"230.00 USD (1 Shares)","commission":"1 USD","total":"231 USD"},
		"equity":{"current":"1,000,000","change":"-1","after":"999,999"},"initial":{"current":"0","change":"115","after":"115"},
		"maintenance":{"current":"0","change":"57.5","after":"57.5"},"position":{"current":"0","change":"1","after":"1"},
		"warn":"21/You are trying to submit an order without having market data for this contract.","error":null}`)
	r = f.mustStatus(f.ibkrTest(f.model2, aaplOrder, ""), http.StatusOK)
	if !strings.Contains(r.raw, `"warn":"21/You are trying`) {
		t.Fatalf("warn: %s", r.raw)
	}

	// A what-if "error" is IBKR's rejection.
	f.gateway.AnswerWhatIf(http.StatusOK, `{"amount":{},"equity":{},"initial":{},"maintenance":{},"position":{},"warn":null,
		"error":"Your account has insufficient funds for account `+fakeibkr.PaperAccount+`"}`)
	r = f.mustCode(f.ibkrTest(f.model2, aaplOrder, ""), http.StatusBadGateway, "ibkr_rejected")
	if r.exchangeCode() != "rejected" || !strings.Contains(r.raw, "insufficient funds") || strings.Contains(r.raw, fakeibkr.PaperAccount) {
		t.Fatalf("what-if error: %s", r.raw)
	}
	// A gateway 5xx leaves the outcome unknown.
	f.gateway.AnswerWhatIf(http.StatusServiceUnavailable, `{"error":"Service Unavailable","statusCode":503}`)
	r = f.mustCode(f.ibkrTest(f.model2, aaplOrder, ""), http.StatusBadGateway, "ibkr_unknown")
	if !strings.Contains(r.raw, "unknown, not rejected") {
		t.Fatalf("5xx: %s", r.raw)
	}
	f.gateway.AnswerWhatIf(0, "")
	evs := f.events(domain.EventIBKRTestOrderErr)
	if len(evs) != 2 || evs[0].Data["outcome"] != "rejected" || evs[0].Data["exchange_code"] != "rejected" || evs[1].Data["outcome"] != "unknown" {
		t.Fatalf("error events %v", evs)
	}
	for _, e := range f.events("execution.") {
		if strings.Contains(e.Raw, fakeibkr.PaperAccount) || strings.Contains(e.Metadata, fakeibkr.PaperAccount) {
			t.Fatalf("an event holds the account id: %s", e.Raw)
		}
	}

	// A session that logged out: the price look-up fails first, nothing
	// is recorded or previewed.
	f.gateway.SetAuth(fakeibkr.AuthState{Authenticated: false, Connected: true})
	before, appended := whatIfs(), len(f.events("execution."))
	r = f.mustCode(f.ibkrTest(f.model2, aaplOrder, ""), http.StatusBadGateway, "ibkr_unavailable")
	if !strings.Contains(r.raw, "log in") || whatIfs() != before || len(f.events("execution.")) != appended {
		t.Fatalf("unauthenticated: %s", r.raw)
	}
	f.gateway.SetAuth(fakeibkr.AuthState{Authenticated: true, Connected: true})

	// A live account is refused unless IBKR_LIVE_ENABLED; nothing is sent.
	f.gateway.SetAccounts(fakeibkr.PaperAccount, "U7654321")
	f.putSecret(f.loose, "IBKR", `{"account_id":"U7654321"}`)
	before = whatIfs()
	r = f.mustCode(f.ibkrTest(f.loose, aaplOrder, "live-1"), http.StatusUnprocessableEntity, "ibkr_refused")
	if whatIfs() != before || strings.Contains(r.raw, "U7654321") {
		t.Fatalf("live account: %d what-ifs, %s", whatIfs()-before, r.raw)
	}
	f.env["IBKR_LIVE_ENABLED"] = "true"
	f.serve(f.key)
	f.loose = f.login("loose@x.test", testPassword, "")
	// The refusal left its key free: the same request now runs.
	if r := f.mustStatus(f.ibkrTest(f.loose, aaplOrder, "live-1"), http.StatusOK); r.str("mode") != "paper" {
		t.Fatalf("live enabled: %s", r.raw)
	}
}

// TestIBKRIdempotentSendsOnce: a repeated what-if with one key reaches the
// gateway once.
func TestIBKRIdempotentSendsOnce(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{gateway: true})
	f.putSecret(f.model2, "IBKR", `{"account_id":"`+fakeibkr.PaperAccount+`"}`)
	first := f.mustStatus(f.ibkrTest(f.model2, aaplOrder, "ib-1"), http.StatusOK)
	again := f.mustStatus(f.ibkrTest(f.model2, aaplOrder, "ib-1"), http.StatusOK)
	if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" || f.gateway.Calls(fakeibkr.WhatIf) != 1 {
		t.Fatalf("replay (%d what-ifs):\n%s\n%s", f.gateway.Calls(fakeibkr.WhatIf), first.raw, again.raw)
	}
}

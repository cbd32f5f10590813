package fakeibkr

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// call sends one request to the fake and decodes the JSON answer.
func call(t *testing.T, client *http.Client, method, url, body string) (int, any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, raw)
	}
	return resp.StatusCode, v
}

func keys(t *testing.T, v any, want ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", v)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %q in %v", k, m)
		}
	}
	return m
}

const aaplBuy = `{"orders":[{"conid":265598,"orderType":"MKT","side":"BUY","quantity":1,"tif":"DAY"}]}`

// The fake answers with IBKR's shapes, over TLS like the gateway.
func TestShapes(t *testing.T) {
	g := StartTLS(t)
	c := g.server.Client()
	base := g.URL()

	_, v := call(t, c, "POST", base+"/iserver/auth/status", "")
	if m := keys(t, v, "authenticated", "competing", "connected", "message", "serverInfo"); m["authenticated"] != true {
		t.Errorf("auth status %v", m)
	}
	_, v = call(t, c, "POST", base+"/tickle", "")
	keys(t, keys(t, keys(t, v, "session", "iserver")["iserver"], "authStatus")["authStatus"], "authenticated", "competing", "connected")

	// Orders need /iserver/accounts first, as on the real gateway.
	status, v := call(t, c, "POST", base+"/iserver/account/DU1234567/orders/whatif", aaplBuy)
	if m := keys(t, v, "error", "statusCode"); status != 400 || m["error"] != "Please query /accounts first" {
		t.Errorf("what-if before accounts: %d %v", status, v)
	}
	_, v = call(t, c, "GET", base+"/iserver/accounts", "")
	if m := keys(t, v, "accounts", "selectedAccount", "aliases"); m["selectedAccount"] != PaperAccount {
		t.Errorf("accounts %v", m)
	}

	_, v = call(t, c, "GET", base+"/iserver/secdef/search?symbol=AAPL", "")
	list, ok := v.([]any)
	if !ok || len(list) != 1 {
		t.Fatalf("secdef search %v", v)
	}
	m := keys(t, list[0], "conid", "symbol", "companyName", "sections")
	if m["conid"] != "265598" { // a string, as IBKR documents it
		t.Errorf("conid %#v", m["conid"])
	}
	if s := m["sections"].([]any)[0].(map[string]any); s["secType"] != "STK" {
		t.Errorf("sections %v", m["sections"])
	}
	_, v = call(t, c, "GET", base+"/iserver/secdef/search?symbol=ZZZZ", "")
	keys(t, v, "error")

	url := base + "/iserver/marketdata/snapshot?conids=265598&fields=31"
	_, v = call(t, c, "GET", url, "")
	if row := v.([]any)[0].(map[string]any); row["31"] != nil || row["conid"] != float64(265598) {
		t.Errorf("first snapshot (subscription only) %v", row)
	}
	_, v = call(t, c, "GET", url, "")
	if row := v.([]any)[0].(map[string]any); row["31"] != "230.00" {
		t.Errorf("second snapshot %v", row)
	}

	status, v = call(t, c, "POST", base+"/iserver/account/DU1234567/orders/whatif", aaplBuy)
	m = keys(t, v, "amount", "equity", "initial", "maintenance", "position", "warn", "error")
	if status != 200 || m["warn"] != nil || m["error"] != nil || len(m) != 7 {
		t.Errorf("what-if %d %v", status, m)
	}
	if a := keys(t, m["amount"], "amount", "commission", "total"); a["amount"] != "230.00 USD (1 Shares)" {
		t.Errorf("amount %v", a)
	}
	for _, k := range []string{"equity", "initial", "maintenance", "position"} {
		keys(t, m[k], "current", "change", "after")
	}

	g.RejectWhatIf("Order rejected")
	_, v = call(t, c, "POST", base+"/iserver/account/DU1234567/orders/whatif", aaplBuy)
	if m := keys(t, v, "amount", "error"); m["error"] != "Order rejected" {
		t.Errorf("rejected what-if %v", m)
	}
}

func TestGatewayErrors(t *testing.T) {
	g := Start(t)
	c := g.server.Client()
	base := g.URL()
	whatIf := base + "/iserver/account/DU1234567/orders/whatif"
	call(t, c, "GET", base+"/iserver/accounts", "")

	if status, v := call(t, c, "POST", base+"/iserver/account/DU9999999/orders/whatif", aaplBuy); status != 500 {
		t.Errorf("wrong account: %d %v", status, v)
	}
	for _, bad := range []string{
		`{"orders":[]}`,
		`{"orders":[{"conid":1,"orderType":"MKT","side":"BUY","quantity":1,"tif":"DAY"}]}`,
		`{"orders":[{"conid":265598,"orderType":"LMT","side":"BUY","quantity":1,"tif":"DAY"}]}`,
		`{"orders":[{"conid":265598,"orderType":"MKT","side":"BUY","quantity":0,"tif":"DAY"}]}`,
		`{"orders":[{"conid":265598,"orderType":"MKT","side":"HOLD","quantity":1,"tif":"DAY"}]}`,
	} {
		if status, v := call(t, c, "POST", whatIf, bad); status != 400 {
			t.Errorf("%s: %d %v", bad, status, v)
		}
	}

	g.Fail(WhatIf, 503)
	if status, v := call(t, c, "POST", whatIf, aaplBuy); status != 503 || keys(t, v, "error", "statusCode")["statusCode"] != float64(503) {
		t.Errorf("503: %d %v", status, v)
	}
	g.Fail(WhatIf, 0)

	g.SetAuth(AuthState{Connected: true})
	for _, u := range []string{base + "/iserver/accounts", base + "/iserver/secdef/search?symbol=AAPL", base + "/iserver/marketdata/snapshot?conids=265598"} {
		if status, _ := call(t, c, "GET", u, ""); status != 401 {
			t.Errorf("%s unauthenticated: %d", u, status)
		}
	}
	if status, _ := call(t, c, "POST", whatIf, aaplBuy); status != 401 {
		t.Errorf("what-if unauthenticated: %d", status)
	}
	// A new session must query the accounts again.
	g.SetAuth(AuthState{Authenticated: true, Connected: true})
	if status, _ := call(t, c, "POST", whatIf, aaplBuy); status != 400 {
		t.Errorf("what-if in a new session: %d", status)
	}
	if n := g.Calls(WhatIf); n != 9 {
		t.Errorf("what-if counted %d times", n)
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(f string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, f)
}

func TestOrderEndpointFailsLoudly(t *testing.T) {
	rec := &recorder{TB: t}
	g := Start(rec)
	status, v := call(t, g.server.Client(), "POST", g.URL()+"/iserver/account/DU1234567/orders", aaplBuy)
	if status != 500 || !strings.Contains(keys(t, v, "error")["error"].(string), "must never be called") {
		t.Errorf("order endpoint answered %d %v", status, v)
	}
	if g.Calls(PlaceOrder) != 1 {
		t.Errorf("not counted")
	}
	for _, f := range rec.cleanups {
		f()
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "order-placing endpoint") {
		t.Errorf("cleanup reported %v", rec.errors)
	}
}

// Package fakeibkr is a fake IBKR Client Portal Web API gateway for tests:
// an httptest server (plain or self-signed TLS, like the real gateway)
// answering with IBKR's response shapes, with switches for the failures a
// real gateway produces, and a request counter per route.
//
// Stocks: AAPL (conid 265598), MSFT (272093), SPY (756733); ES is a symbol
// with only a futures section. Prices and what-if previews are the
// ibkr.Simulator's, so a preview through the fake equals the simulator's.
// Accounts: DU1234567 unless SetAccounts says otherwise.
//
// The order-placing endpoint POST /iserver/account/{accountId}/orders is
// routed only to fail: it answers 500, is counted, and the test that started
// the fake fails at cleanup.
package fakeibkr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/adapters/ibkr"
)

// Route names a gateway endpoint, for counters and injected failures.
type Route string

// The routes the fake serves.
const (
	AuthStatus Route = "POST /iserver/auth/status"
	Tickle     Route = "POST /tickle"
	Accounts   Route = "GET /iserver/accounts"
	Search     Route = "GET /iserver/secdef/search"
	Snapshot   Route = "GET /iserver/marketdata/snapshot"
	WhatIf     Route = "POST /iserver/account/{accountId}/orders/whatif"
	PlaceOrder Route = "POST /iserver/account/{accountId}/orders"
)

// BasePath is where the gateway serves its API.
const BasePath = "/v1/api"

// PaperAccount is the default account of the fake's session.
const PaperAccount = "DU1234567"

type stock struct {
	conid, name string
	secTypes    []string
}

var stocks = map[string]stock{
	"AAPL": {conid: "265598", name: "APPLE INC", secTypes: []string{"STK", "OPT", "WAR", "IOPT", "CFD", "BAG"}},
	"MSFT": {conid: "272093", name: "MICROSOFT CORP", secTypes: []string{"STK", "OPT", "WAR", "CFD", "BAG"}},
	"SPY":  {conid: "756733", name: "SPDR S&P 500 ETF TRUST", secTypes: []string{"STK", "OPT", "WAR", "BAG"}},
	"ES":   {conid: "11004968", name: "E-mini S&P 500", secTypes: []string{"FUT", "FOP"}},
}

// Gateway is the fake. Its zero value is not usable; use New, Start or
// StartTLS.
type Gateway struct {
	server *httptest.Server
	mux    *http.ServeMux
	sim    *ibkr.Simulator

	mu              sync.Mutex
	auth            AuthState
	accounts        []string
	accountsQueried bool            // IBKR wants /iserver/accounts first in each session
	subscribed      map[string]bool // conids whose snapshot stream has started
	lastPrice       map[string]string
	reject          string
	answer          *cannedAnswer
	fail            map[Route]int
	delay           map[Route]time.Duration
	calls           map[Route]int
	lastWhatIf      []byte
}

// AuthState is what POST /iserver/auth/status reports.
type AuthState struct {
	Authenticated, Competing, Connected bool
}

type cannedAnswer struct {
	status int
	body   string
}

// New returns the fake as an http.Handler serving under BasePath, for tests
// that mount it themselves.
func New() *Gateway {
	g := &Gateway{
		mux:        http.NewServeMux(),
		sim:        ibkr.NewSimulator(),
		auth:       AuthState{Authenticated: true, Connected: true},
		accounts:   []string{PaperAccount},
		subscribed: map[string]bool{},
		lastPrice:  map[string]string{},
		fail:       map[Route]int{},
		delay:      map[Route]time.Duration{},
		calls:      map[Route]int{},
	}
	g.handle(AuthStatus, g.authStatus)
	g.handle(Tickle, g.tickle)
	g.handle(Accounts, g.listAccounts)
	g.handle(Search, g.search)
	g.handle(Snapshot, g.snapshot)
	g.handle(WhatIf, g.whatIf)
	g.handle(PlaceOrder, g.placeOrder)
	return g
}

// Start serves the fake over plain HTTP until the test ends; the test fails
// if anything called the order-placing endpoint.
func Start(tb testing.TB) *Gateway { return start(tb, false) }

// StartTLS serves the fake over TLS with a self-signed certificate, like the
// real gateway.
func StartTLS(tb testing.TB) *Gateway { return start(tb, true) }

func start(tb testing.TB, useTLS bool) *Gateway {
	tb.Helper()
	g := New()
	g.server = httptest.NewUnstartedServer(g)
	// Tests of untrusted certificates make the server log handshake errors.
	g.server.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		g.server.StartTLS()
	} else {
		g.server.Start()
	}
	tb.Cleanup(func() {
		g.server.Close()
		if n := g.Calls(PlaceOrder); n > 0 {
			tb.Errorf("fakeibkr: the order-placing endpoint POST /iserver/account/{accountId}/orders was called %d time(s)", n)
		}
	})
	return g
}

// URL is the API base URL, e.g. https://127.0.0.1:41234/v1/api.
func (g *Gateway) URL() string { return g.server.URL + BasePath }

// ServeHTTP serves the gateway's API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// SetAuth sets the session state. Losing authentication starts a new
// session: /iserver/accounts must be queried again.
func (g *Gateway) SetAuth(s AuthState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !s.Authenticated {
		g.accountsQueried = false
	}
	g.auth = s
}

// SetAccounts sets the accounts the session can trade.
func (g *Gateway) SetAccounts(ids ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.accounts = slices.Clone(ids)
}

// SetLastPrice sets snapshot field 31 for symbol verbatim ("C230.15",
// "H230.15", ""); by default it is the simulator's price.
func (g *Gateway) SetLastPrice(symbol, field31 string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastPrice[symbol] = field31
}

// RejectWhatIf makes what-if previews carry message as their "error"
// ("" restores normal previews).
func (g *Gateway) RejectWhatIf(message string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reject = message
}

// AnswerWhatIf makes what-if requests get this status and body verbatim,
// before any other check; status 0 restores normal previews.
func (g *Gateway) AnswerWhatIf(status int, body string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.answer = nil
	if status != 0 {
		g.answer = &cannedAnswer{status: status, body: body}
	}
}

// Fail makes route answer status with IBKR's error body (0 restores it).
func (g *Gateway) Fail(route Route, status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail[route] = status
}

// Delay makes route answer after d (or when the client gives up).
func (g *Gateway) Delay(route Route, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.delay[route] = d
}

// Calls returns how many requests route received.
func (g *Gateway) Calls(route Route) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[route]
}

// TotalCalls returns how many requests the fake received on any route.
func (g *Gateway) TotalCalls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c
	}
	return n
}

// LastWhatIf returns the body of the last what-if request.
func (g *Gateway) LastWhatIf() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.lastWhatIf)
}

func (g *Gateway) handle(route Route, h func(http.ResponseWriter, *http.Request)) {
	method, path, _ := strings.Cut(string(route), " ")
	g.mux.HandleFunc(method+" "+BasePath+path, func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.calls[route]++
		status, delay := g.fail[route], g.delay[route]
		g.mu.Unlock()
		if delay > 0 {
			// With the body read, the server notices a client that gives
			// up and cancels r.Context().
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(bytes.NewReader(body))
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			writeError(w, status, http.StatusText(status))
			return
		}
		h(w, r)
	})
}

// writeError writes IBKR's error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "statusCode": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authorized answers 401 like the gateway when there is no brokerage session.
func (g *Gateway) authorized(w http.ResponseWriter) bool {
	g.mu.Lock()
	ok := g.auth.Authenticated && g.auth.Connected
	g.mu.Unlock()
	if !ok {
		writeError(w, http.StatusUnauthorized, "not authenticated")
	}
	return ok
}

func (g *Gateway) authStatus(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	s := g.auth
	g.mu.Unlock()
	msg := ""
	if !s.Authenticated {
		msg = "Not authenticated"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"authenticated": s.Authenticated, "competing": s.Competing, "connected": s.Connected,
		"message": msg, "MAC": "00:00:5E:00:53:01", "fail": "",
		"serverInfo": map[string]any{"serverName": "JifN19053", "serverVersion": "Build 10.25.0a, Dec 5, 2023 4:35:44 PM"},
	})
}

func (g *Gateway) tickle(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	s := g.auth
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"session": "bb665d0f55b6289d70bc7a01c0a7e88d", "ssoExpires": 460311, "collission": false, "userId": 123456,
		"hmds":    map[string]any{"error": "no bridge"},
		"iserver": map[string]any{"authStatus": map[string]any{"authenticated": s.Authenticated, "competing": s.Competing, "connected": s.Connected, "message": "", "MAC": "00:00:5E:00:53:01", "serverInfo": map[string]any{"serverName": "JifN19053", "serverVersion": "Build 10.25.0a"}}},
	})
}

func (g *Gateway) listAccounts(w http.ResponseWriter, _ *http.Request) {
	if !g.authorized(w) {
		return
	}
	g.mu.Lock()
	g.accountsQueried = true
	accounts := slices.Clone(g.accounts)
	g.mu.Unlock()
	selected := ""
	if len(accounts) > 0 {
		selected = accounts[0]
	}
	aliases := map[string]string{}
	for _, a := range accounts {
		aliases[a] = a
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"accounts": accounts, "aliases": aliases, "selectedAccount": selected,
		"acctProps": map[string]any{}, "allowFeatures": map[string]any{"showGFIS": true}, "groups": []string{}, "profiles": []string{},
		"isPaper": strings.HasPrefix(selected, "DU"), "isFt": false, "sessionId": "6601e6a8.00000001",
	})
}

func (g *Gateway) search(w http.ResponseWriter, r *http.Request) {
	if !g.authorized(w) {
		return
	}
	symbol := r.URL.Query().Get("symbol")
	s, ok := stocks[symbol]
	if !ok {
		writeJSON(w, http.StatusOK, map[string]string{"error": "No symbol found"})
		return
	}
	var sections []map[string]any
	for _, t := range s.secTypes {
		sec := map[string]any{"secType": t}
		if t == "STK" {
			sec["exchange"] = "NASDAQ;NYSE;ARCA;BATS;IEX"
		}
		sections = append(sections, sec)
	}
	writeJSON(w, http.StatusOK, []map[string]any{{
		"conid": s.conid, "companyHeader": s.name + " - NASDAQ", "companyName": s.name, "symbol": symbol,
		"description": "NASDAQ", "restricted": nil, "fop": nil, "opt": "20250117;20250221", "war": nil, "sections": sections,
	}})
}

func (g *Gateway) snapshot(w http.ResponseWriter, r *http.Request) {
	if !g.authorized(w) {
		return
	}
	var rows []map[string]any
	for _, conid := range strings.Split(r.URL.Query().Get("conids"), ",") {
		symbol := symbolOf(conid)
		if symbol == "" {
			continue
		}
		n, _ := strconv.ParseInt(conid, 10, 64)
		row := map[string]any{"conid": n, "conidEx": conid, "server_id": "q0", "_updated": time.Now().UnixMilli(), "6119": "q0"}
		g.mu.Lock()
		// Like the gateway: the first request for a conid only subscribes.
		ready := g.subscribed[conid]
		g.subscribed[conid] = true
		last, overridden := g.lastPrice[symbol]
		g.mu.Unlock()
		if ready {
			if !overridden {
				price, err := g.sim.ReferencePrice(r.Context(), symbol)
				if err != nil {
					writeError(w, http.StatusInternalServerError, err.Error())
					return
				}
				last = price.StringFixed(2)
			}
			row["31"] = last
			row["6509"] = "RpB"
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, rows)
}

func symbolOf(conid string) string {
	for symbol, s := range stocks {
		if s.conid == conid {
			return symbol
		}
	}
	return ""
}

type whatIfBody struct {
	Orders []struct {
		Conid     json.Number `json:"conid"`
		OrderType string      `json:"orderType"`
		Side      string      `json:"side"`
		Quantity  json.Number `json:"quantity"`
		TIF       string      `json:"tif"`
		Price     json.Number `json:"price"`
	} `json:"orders"`
}

func (g *Gateway) whatIf(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	g.mu.Lock()
	g.lastWhatIf = body
	answer, reject, queried := g.answer, g.reject, g.accountsQueried
	known := slices.Contains(g.accounts, r.PathValue("accountId"))
	g.mu.Unlock()
	if answer != nil {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(answer.status)
		_, _ = io.WriteString(w, answer.body)
		return
	}
	if !g.authorized(w) {
		return
	}
	if !queried {
		writeError(w, http.StatusBadRequest, "Please query /accounts first")
		return
	}
	if !known {
		writeError(w, http.StatusInternalServerError, "Account not found or not authorized")
		return
	}
	order, msg := parseWhatIf(body)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	p, err := g.sim.WhatIf(r.Context(), PaperAccount, order)
	if e := (*ibkr.Error)(nil); errors.As(err, &e) && e.Preview != nil {
		p, err = *e.Preview, nil
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	var answerBody map[string]any
	if err := json.Unmarshal(p.Raw, &answerBody); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if reject != "" {
		answerBody["error"] = reject
	}
	writeJSON(w, http.StatusOK, answerBody)
}

// parseWhatIf validates a what-if body like the gateway and returns the order.
func parseWhatIf(body []byte) (ibkr.Order, string) {
	var b whatIfBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil || len(b.Orders) != 1 {
		return ibkr.Order{}, "Invalid order request: exactly one order expected"
	}
	o := b.Orders[0]
	symbol := symbolOf(o.Conid.String())
	if symbol == "" {
		return ibkr.Order{}, fmt.Sprintf("Invalid contract id %s", o.Conid)
	}
	qty, err := decimal.NewFromString(o.Quantity.String())
	if err != nil || !qty.IsPositive() {
		return ibkr.Order{}, "Invalid quantity"
	}
	if o.Side != "BUY" && o.Side != "SELL" {
		return ibkr.Order{}, "Invalid side"
	}
	if o.TIF != "DAY" {
		return ibkr.Order{}, "Invalid time in force"
	}
	order := ibkr.Order{Symbol: symbol, Side: o.Side, Quantity: qty}
	switch o.OrderType {
	case "MKT":
		order.Type = ibkr.TypeMarket
		if o.Price != "" {
			return ibkr.Order{}, "Price is not allowed for a market order"
		}
	case "LMT":
		order.Type = ibkr.TypeLimit
		if order.Price, err = decimal.NewFromString(o.Price.String()); err != nil || !order.Price.IsPositive() {
			return ibkr.Order{}, "Invalid price for a limit order"
		}
	default:
		return ibkr.Order{}, "Invalid order type"
	}
	return order, ""
}

func (g *Gateway) placeOrder(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusInternalServerError, "fakeibkr: the order-placing endpoint must never be called")
}

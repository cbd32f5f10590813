package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/internal/apispec"
	"github.com/tradeops/tradeops/internal/testdb"
)

// TestDatabaseOutageIs503: while the database is unreachable (the test's
// own proxy cut), login, the auth middleware's user look-up, the audit read
// model and the exchange secrets all answer 503 unavailable with
// Retry-After, never 500; once it is back, everything works again without
// a restart.
func TestDatabaseOutageIs503(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL, drop := testdb.Create(ctx, t)
	t.Cleanup(drop)
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testdb.NewProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	proxied := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, proxy.Addr(), cfg.Database)

	addr := freeAddr(t)
	banner := &syncBuffer{}
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(serveCtx, []string{"tradeops", "serve", "--dev", "--projections=off"}, envOf(map[string]string{
			"DATABASE_URL": proxied, "LISTEN_ADDR": addr,
		}), nil, io.Discard, banner)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	base := "http://" + addr
	// /healthz is ok only once the API is: the demo users exist by then.
	waitStatus(t, base+"/healthz", http.StatusOK, `"ok"`)
	password := demoPassword(t, banner.String(), app.DemoAdminEmail)
	login := func() (*http.Response, map[string]any) {
		return call(t, http.MethodPost, base+"/auth/login", "", url.Values{"username": {app.DemoAdminEmail}, "password": {password}}.Encode())
	}
	resp, body := login()
	tok, _ := body["access_token"].(string)
	if resp.StatusCode != http.StatusOK || tok == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, body)
	}

	// Two prepares (IBKR's simulator needs no network): the second is
	// decided on the remembered state, so the one during the outage goes
	// through the group commit's path.
	const prepare = `{"exchange":"IBKR","symbol":"AAPL","side":"BUY","qty":1}`
	for range 2 {
		if resp, body := call(t, http.MethodPost, base+"/ops/execution/prepare", tok, prepare); resp.StatusCode != http.StatusOK {
			t.Fatalf("prepare: %d %v", resp.StatusCode, body)
		}
	}

	proxy.Cut()
	// The token was never used: the middleware has to look its user up.
	for _, c := range []struct{ method, path, token, body string }{
		{http.MethodPost, "/auth/login", "", ""},
		{http.MethodGet, "/users/me", tok, ""},
		{http.MethodGet, "/ops/audit/me", tok, ""},
		{http.MethodGet, "/ops/audit?limit=5", tok, ""},
		{http.MethodGet, "/users/exchange-secrets", tok, ""},
		{http.MethodPut, "/users/exchange-secrets/BINANCE", tok, `{"api_key":"APIKEY0000abcd","api_secret":"s"}`},
	} {
		var resp *http.Response
		var body map[string]any
		if c.path == "/auth/login" {
			resp, body = login()
		} else {
			resp, body = call(t, c.method, base+c.path, c.token, c.body)
		}
		wantUnavailable(t, c.method+" "+c.path, resp, body)
	}
	waitStatus(t, base+"/healthz", http.StatusServiceUnavailable, `"degraded"`)
	// Now that the user is cached, the commands' own failures.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/ops/execution/prepare", prepare},
		{http.MethodGet, "/ops/risk/kill-switch", ""},
		{http.MethodPut, "/ops/risk/kill-switch", `{"engaged":true,"reason":"outage drill"}`},
	} {
		resp, body := call(t, c.method, base+c.path, tok, c.body)
		wantUnavailable(t, c.method+" "+c.path, resp, body)
	}

	proxy.Restore()
	waitStatus(t, base+"/healthz", http.StatusOK, `"ok"`)
	if resp, body := call(t, http.MethodGet, base+"/users/me", tok, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("/users/me after the outage: %d %v", resp.StatusCode, body)
	}
	if resp, body := call(t, http.MethodPost, base+"/ops/execution/prepare", tok, prepare); resp.StatusCode != http.StatusOK || body["decision"] != "accepted" {
		t.Fatalf("prepare after the outage: %d %v", resp.StatusCode, body)
	}
	if resp, body := call(t, http.MethodGet, base+"/ops/risk/kill-switch", tok, ""); resp.StatusCode != http.StatusOK || body["engaged"] != false {
		t.Fatalf("kill switch after the outage: %d %v", resp.StatusCode, body)
	}
	// A read model that lags is the same 503: with no projection running
	// (--projections=off), the secrets status never reaches the PUT, and
	// the GET answers unavailable after its bounded wait, never stale.
	if resp, body := call(t, http.MethodPut, base+"/users/exchange-secrets/BINANCE", tok, `{"api_key":"APIKEY0000abcd","api_secret":"s"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT after the outage: %d %v", resp.StatusCode, body)
	}
	resp, body = call(t, http.MethodGet, base+"/users/exchange-secrets", tok, "")
	wantUnavailable(t, "GET /users/exchange-secrets behind the projection", resp, body)
	if resp, body := login(); resp.StatusCode != http.StatusOK {
		t.Fatalf("login after the outage: %d %v", resp.StatusCode, body)
	}
	// Now the middleware has the user cached: the audit read model's own
	// failure maps to 503 too.
	proxy.Cut()
	resp, body = call(t, http.MethodGet, base+"/ops/audit/me", tok, "")
	wantUnavailable(t, "/ops/audit/me (cached user)", resp, body)
	proxy.Restore()
}

func wantUnavailable(t *testing.T, what string, resp *http.Response, body map[string]any) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if resp.StatusCode != http.StatusServiceUnavailable || e["code"] != "unavailable" || e["message"] == "" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s during the outage: %d %v Retry-After=%q", what, resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

// call sends a body (when given: a JSON object, or a form) or none, with a
// bearer token when given, checks the answer against api/openapi.yaml and
// decodes it.
func call(t *testing.T, method, target, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasPrefix(body, "{"):
		req.Header.Set("Content-Type", "application/json")
	case body != "":
		req.Header.Set("Content-Type", form)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := apispec.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var decoded map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&decoded)
	return resp, decoded
}

// demoPassword finds a demo user's password in serve --dev's banner.
func demoPassword(t *testing.T, banner, email string) string {
	t.Helper()
	for _, line := range strings.Split(banner, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == email {
			return f[1]
		}
	}
	t.Fatalf("no password for %s in the banner:\n%s", email, banner)
	return ""
}

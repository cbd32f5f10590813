package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/apispec"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

// newAPI is the harness serving the audit routes too, with the options
// serve passes (the database classifier), as serve wires them.
func newAPI(t testing.TB) *harness {
	t.Helper()
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	srv := httptest.NewServer(porthttp.NewHandler(porthttp.Options{
		Version: "test", Health: h.pool, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Classify: postgres.Classify,
	}, h.id.routes, auditRoutes(eventstore.New(h.pool), h.id.auth)))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// eventCount is how many events the store holds.
func (h *harness) eventCount() int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM watermill_events`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// TestBadInputIsRefusedAndWritesNothing: NUL bytes, invalid UTF-8 and
// oversized values are 400 with a stable code on every endpoint that takes
// input — the login form (no authentication needed), the 2FA JSON bodies,
// the audit query parameters, a path — and nothing reaches the store.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	h := newAPI(t)
	h.createUser("admin@example.com", "admin", "correct horse battery")
	tok := h.mustLogin("admin@example.com", "correct horse battery", "")
	if r := h.do(http.MethodPost, "/auth/2fa/setup", "", "", tok, ""); r.status != http.StatusOK {
		t.Fatalf("2fa setup: %d %s", r.status, r.raw)
	}
	before := h.eventCount()
	long := func(n int) string { return strings.Repeat("7", n) }
	const js = "application/json"
	type req struct{ method, path, ct, body, token, code string }
	cases := []req{
		{"POST", "/auth/login", form, "username=pro%00be@example.com&password=x", "", "invalid_encoding"},
		{"POST", "/auth/login", form, "username=%ff%fe@example.com&password=x", "", "invalid_encoding"},
		{"POST", "/auth/login", form, "username=a@example.com&password=pass%00word", "", "invalid_encoding"},
		{"POST", "/auth/login", form, "username=a@example.com&password=x&otp=%c3", "", "invalid_encoding"},
		{"POST", "/auth/login", form, "username=a@example.com&password=x&grant_type=%00", "", "invalid_encoding"},
		{"POST", "/auth/login", form, "username=a@example.com&password=x&%ff=1", "", "invalid_encoding"},
		{"POST", "/auth/login", form, "username=" + strings.Repeat("a", 255) + "&password=x", "", "field_too_long"},
		{"POST", "/auth/login", form, "username=" + strings.Repeat("a", 243) + "%40example.com&password=x", "", "field_too_long"},
		{"POST", "/auth/login", form, "username=a@example.com&password=" + long(domain.MaxPasswordLength+1), "", "field_too_long"},
		{"POST", "/auth/login", form, "username=a@example.com&password=x&otp=" + long(17), "", "field_too_long"},
		{"POST", "/auth/login?username=%00", form, "username=a@example.com&password=x", "", "invalid_encoding"},
		{"POST", "/auth/2fa/enable", js, `{"otp":"123\u0000456"}`, tok, "invalid_encoding"},
		{"POST", "/auth/2fa/enable", js, "{\"otp\":\"\xff\xfe\"}", tok, "invalid_encoding"},
		{"POST", "/auth/2fa/enable", js, `{"otp":"` + long(17) + `"}`, tok, "field_too_long"},
		{"POST", "/auth/2fa/disable", js, `{"otp":"\u0000"}`, tok, "invalid_encoding"},
		{"POST", "/auth/2fa/disable", js, "{\"otp\":\"1\xc3\"}", tok, "invalid_encoding"},
		{"POST", "/auth/2fa/disable", js, `{"otp":"` + long(100) + `"}`, tok, "field_too_long"},
		{"GET", "/ops/audit/me?type=%00", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit/me?type=%ff%fe", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit/me?before=%00", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit/me?limit=1%c3", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit/me?type=" + long(2000), "", "", tok, "field_too_long"},
		{"GET", "/ops/audit?user=%00", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit?user=%ff%fe", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit?type=%00&user=admin@example.com", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit?since=2026-01-01T00:00:00Z%00", "", "", tok, "invalid_encoding"},
		{"GET", "/ops/audit?user=" + long(2000), "", "", tok, "field_too_long"},
		{"GET", "/users/me%00", "", "", tok, "invalid_encoding"},
		{"POST", "/auth/login%ff", form, "username=a@example.com&password=x", "", "invalid_encoding"},
		{"GET", "/ops/audit/%00", "", "", tok, "invalid_encoding"},
	}
	for _, c := range cases {
		r := h.do(c.method, c.path, c.ct, c.body, c.token, "")
		msg, _ := r.body["error"].(map[string]any)["message"].(string)
		if r.status != http.StatusBadRequest || r.code() != c.code || msg == "" {
			t.Errorf("%s %.60s %.60q: got %d %s, want 400 %s", c.method, c.path, c.body, r.status, r.raw, c.code)
		}
		if strings.Contains(r.raw, "invalid byte sequence") || strings.Contains(msg, "\x00") {
			t.Errorf("%s %.60s: leaks: %s", c.method, c.path, r.raw)
		}
	}
	if after := h.eventCount(); after != before {
		t.Fatalf("refused requests appended %d events", after-before)
	}
	// The error messages speak JSON, not Go.
	for _, body := range []string{`{"otp":123456}`, `"123456"`, `[1]`} {
		r := h.do(http.MethodPost, "/auth/2fa/enable", js, body, tok, "")
		if r.status != http.StatusBadRequest || strings.Contains(r.raw, "otpRequest") || strings.Contains(r.raw, "http.") {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	if r := h.do(http.MethodPost, "/auth/2fa/enable", js, `{"otp":123456}`, tok, ""); !strings.Contains(r.raw, `field \"otp\" must be a string`) {
		t.Errorf("wrong type message: %s", r.raw)
	}
	// At the bounds, input still reaches the app: a 254-byte username is
	// an ordinary failed login.
	wantError(t, h.do(http.MethodPost, "/auth/login", form, "username="+strings.Repeat("a", 242)+"%40example.com&password=x", "", ""),
		http.StatusUnauthorized, "invalid_credentials")
}

// apiCall sends one request to the harness's server and checks the answer
// is never a 5xx and, for a 4xx, the API's JSON error shape, and that it
// matches api/openapi.yaml. Fuzz targets use it: it reports through their
// t, not the harness's.
func apiCall(t *testing.T, h *harness, req *http.Request) {
	t.Helper()
	resp, err := apispec.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		t.Fatalf("%s %q: %d %s", req.Method, req.URL.RawQuery, resp.StatusCode, raw)
	}
	if resp.StatusCode >= 400 {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d not in the API's error shape: %s", req.Method, resp.StatusCode, raw)
		}
	}
}

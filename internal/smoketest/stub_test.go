package smoketest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// stub is a tradeops API with the DESIGN §5 shapes of the endpoints the
// smoke script calls, behaving as configured and recording what it was sent.
type stub struct {
	// configuration, set before the server starts
	password       string
	token          string
	otp            string // "" = 2FA off
	binanceSecret  bool
	ibkrSecret     bool
	binanceRejects bool   // the exchange rejects the key: test order error
	decision       string // prepare's decision: accepted or rejected
	healthStatus   int
	skipEvent      string        // an event type never recorded
	auditLag       time.Duration // how long an event takes to show in the audit log
	secretsBehind  int           // how many GET /users/exchange-secrets get 503 (status catching up)
	echoPassword   bool          // a careless server: the login error repeats the password
	dropFirst      string        // a path whose first request is answered by a dropped connection

	mu       sync.Mutex
	logins   []url.Values
	puts     []map[string]string
	keys     map[string][]string // path → Idempotency-Key of each request
	replies  map[string]reply    // Idempotency-Key → the first answer
	events   []event
	requests []string
	dropped  bool
}

type reply struct {
	status int
	body   any
}

type event struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	At      time.Time      `json:"at"`
	Stream  string         `json:"stream"`
	Actor   map[string]any `json:"actor"`
	Data    map[string]any `json:"data"`
	visible time.Time
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// start serves the stub; events already in the log are seeded with seed.
func (s *stub) start(t *testing.T) *httptest.Server {
	t.Helper()
	s.keys = map[string][]string{}
	s.replies = map[string]reply{}
	if s.decision == "" {
		s.decision = "accepted"
	}
	if s.healthStatus == 0 {
		s.healthStatus = http.StatusOK
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("POST /auth/login", s.login)
	mux.Handle("GET /users/me", s.user(s.me))
	mux.Handle("GET /users/exchange-secrets", s.user(s.secrets))
	mux.Handle("PUT /users/exchange-secrets/{exchange}", s.user(s.putSecret))
	mux.Handle("POST /ops/execution/prepare", s.user(s.idempotent(s.prepare)))
	mux.Handle("POST /ops/execution/binance/test-order", s.user(s.idempotent(s.binanceOrder)))
	mux.Handle("POST /ops/execution/ibkr/test-order", s.user(s.idempotent(s.ibkrOrder)))
	mux.Handle("GET /ops/audit/me", s.user(s.audit))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// seed puts events of a previous run in the log: every type an hour ago, and
// an execution.prepare of another execution within the current second.
func (s *stub) seed() {
	old := time.Now().Add(-time.Hour)
	for _, typ := range []string{"auth.login.success", "execution.prepare",
		"execution.binance.test_order.success", "execution.binance.test_order.error",
		"execution.ibkr.test_order.success", "execution.ibkr.test_order.error"} {
		s.recordAt(typ, newID(), old)
	}
	s.recordAt("execution.prepare", newID(), time.Now())
}

func (s *stub) recordAt(typ, executionID string, at time.Time) {
	data := map[string]any{}
	if executionID != "" {
		data["execution_id"] = executionID
	}
	s.events = append(s.events, event{ID: newID(), Type: typ, At: at.UTC(), Stream: "user-1",
		Actor: map[string]any{"id": "1", "email": "operator@example.com"}, Data: data, visible: at.Add(s.auditLag)})
}

// record appends an event now, unless it is the type configured to be lost.
func (s *stub) record(typ, executionID string) {
	if typ == s.skipEvent {
		return
	}
	s.recordAt(typ, executionID, time.Now())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func (s *stub) health(w http.ResponseWriter, _ *http.Request) {
	if s.healthStatus != http.StatusOK {
		writeJSON(w, s.healthStatus, map[string]string{"status": "degraded", "database": "unreachable", "version": "stub"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "database": "ok", "version": "stub"})
}

func (s *stub) login(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		apiError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "form expected")
		return
	}
	if err := r.ParseForm(); err != nil {
		apiError(w, http.StatusBadRequest, "malformed_form", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins = append(s.logins, r.PostForm)
	switch {
	case r.PostForm.Get("password") != s.password:
		msg := "wrong email or password"
		if s.echoPassword {
			msg = "wrong password " + r.PostForm.Get("password")
		}
		apiError(w, http.StatusUnauthorized, "invalid_credentials", msg)
	case s.otp != "" && r.PostForm.Get("otp") == "":
		apiError(w, http.StatusUnauthorized, "otp_required", "this account needs its one-time code")
	case s.otp != "" && r.PostForm.Get("otp") != s.otp:
		apiError(w, http.StatusUnauthorized, "otp_invalid", "wrong one-time code")
	default:
		s.record("auth.login.success", "")
		writeJSON(w, http.StatusOK, map[string]any{"access_token": s.token, "token_type": "bearer", "expires_in": 900})
	}
}

// user requires the stub's bearer token.
func (s *stub) user(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.token {
			apiError(w, http.StatusUnauthorized, "invalid_token", "missing or invalid bearer token")
			return
		}
		next(w, r)
	})
}

// idempotent answers a repeated Idempotency-Key with the first answer and
// does nothing again, as the server does; a first request to dropFirst is
// processed and then its connection dropped, as if the answer were lost.
func (s *stub) idempotent(next func(r *http.Request) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			apiError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "JSON expected")
			return
		}
		key := r.Header.Get("Idempotency-Key")
		s.mu.Lock()
		s.keys[r.URL.Path] = append(s.keys[r.URL.Path], key)
		rep, seen := s.replies[key]
		if !seen {
			rep = next(r)
			if key != "" {
				s.replies[key] = rep
			}
		}
		drop := r.URL.Path == s.dropFirst && !s.dropped
		if drop {
			s.dropped = true
		}
		s.mu.Unlock()
		if drop {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		writeJSON(w, rep.status, rep.body)
	}
}

func (s *stub) me(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"id": "1", "email": "operator@example.com", "role": "operator",
		"risk_profile": "model2", "totp_enabled": s.otp != ""})
}

func status(configured bool) string {
	if configured {
		return "configured"
	}
	return "missing"
}

func (s *stub) secrets(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secretsBehind > 0 {
		s.secretsBehind--
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusServiceUnavailable, "unavailable", "the secrets status is still catching up with your latest change; retry shortly")
		return
	}
	binance := map[string]any{"exchange": "BINANCE", "status": status(s.binanceSecret)}
	if s.binanceSecret {
		binance["api_key_hint"] = "****abcd"
		binance["key_id"] = "0123456789abcdef"
		binance["updated_at"] = time.Now().UTC().Format(time.RFC3339)
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": []any{binance,
		map[string]any{"exchange": "IBKR", "status": status(s.ibkrSecret)}}})
}

func (s *stub) putSecret(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil ||
		r.PathValue("exchange") != "BINANCE" || body["api_key"] == "" || body["api_secret"] == "" {
		apiError(w, http.StatusBadRequest, "invalid_request", "BINANCE needs api_key and api_secret")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts = append(s.puts, body)
	s.binanceSecret = true
	s.record("secrets.exchange.configured", "")
	writeJSON(w, http.StatusOK, map[string]any{"exchange": "BINANCE", "status": "configured", "api_key_hint": "****abcd"})
}

// order reads a request body and checks it is the runbook's.
func order(r *http.Request, want string) bool {
	var got, exp map[string]any
	if json.NewDecoder(r.Body).Decode(&got) != nil || json.Unmarshal([]byte(want), &exp) != nil {
		return false
	}
	return fmt.Sprint(got) == fmt.Sprint(exp)
}

func (s *stub) prepare(r *http.Request) reply {
	if !order(r, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`) {
		return reply{http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_order", "message": "not the runbook's order"}}}
	}
	id := newID()
	s.record("execution.prepare", id)
	accepted := s.decision == "accepted"
	return reply{http.StatusOK, map[string]any{
		"execution_id": id, "exchange": "BINANCE", "symbol": "BTCUSDT", "side": "BUY", "qty": "0.01",
		"reference_price": "60000", "notional": "600", "risk_profile": "model2", "decision": s.decision,
		"checks": []any{
			map[string]any{"name": "symbol_allowed", "passed": true, "limit": "", "value": "BTCUSDT", "code": "RISK_SYMBOL"},
			map[string]any{"name": "max_notional", "passed": accepted, "limit": "500", "value": "600", "code": "RISK_MAX_NOTIONAL"},
			map[string]any{"name": "lot_size", "passed": accepted, "limit": "0.001", "value": "0.01", "code": "EXCHANGE_LOT_SIZE"},
		},
		"shadow": map[string]any{"profile": "loose", "decision": "accepted"},
	}}
}

func (s *stub) binanceOrder(r *http.Request) reply {
	if !order(r, `{"symbol":"BTCUSDT","side":"BUY","qty":0.01}`) {
		return reply{http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_order", "message": "not the runbook's order"}}}
	}
	id := newID()
	if s.binanceRejects {
		s.record("execution.binance.test_order.error", id)
		return reply{http.StatusBadGateway, map[string]any{"status": "error", "error": map[string]any{
			"code": "binance_rejected", "message": "Invalid API-key, IP, or permissions for action.", "exchange_code": -2015}}}
	}
	s.record("execution.binance.test_order.success", id)
	return reply{http.StatusOK, map[string]any{"execution_id": id, "status": "success", "exchange": "BINANCE",
		"mode": "testnet", "validated": true, "sent_to_matching_engine": false, "exchange_response": map[string]any{}}}
}

func (s *stub) ibkrOrder(r *http.Request) reply {
	if !order(r, `{"symbol":"AAPL","side":"BUY","qty":1}`) {
		return reply{http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_order", "message": "not the runbook's order"}}}
	}
	if !s.ibkrSecret {
		return reply{http.StatusUnprocessableEntity, map[string]any{"error": map[string]string{
			"code": "exchange_secret_missing", "message": "no IBKR secret is configured"}}}
	}
	id := newID()
	s.record("execution.ibkr.test_order.success", id)
	return reply{http.StatusOK, map[string]any{"execution_id": id, "status": "success", "exchange": "IBKR",
		"mode": "simulated", "validated": true, "sent_to_matching_engine": false, "preview": map[string]any{}}}
}

func (s *stub) audit(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("limit") != "100" {
		apiError(w, http.StatusBadRequest, "invalid_limit", "the runbook asks for limit=100")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []event
	for _, e := range s.events {
		if !e.visible.After(now) {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if len(out) > 100 {
		out = out[:100]
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": nil})
}

// loggedRequests returns the request lines the stub saw, in order.
func (s *stub) loggedRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *stub) count(prefix string) int {
	n := 0
	for _, r := range s.loggedRequests() {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

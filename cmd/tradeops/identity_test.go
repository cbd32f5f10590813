package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/adapters/argon2id"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/apispec"
	"github.com/tradeops/tradeops/internal/testdb"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

// testSecretKey signs the harness's tokens; forged tokens reuse it.
var testSecretKey = []byte("test-secret-key-of-at-least-32-bytes!!")

// testUsernames is the key the harness hashes attempted usernames with.
var testUsernames = domain.NewUsernameKey(testSecretKey)

// policyWith is the default throttle policy with edit applied.
func policyWith(edit func(p *domain.ThrottlePolicy)) domain.ThrottlePolicy {
	p := domain.DefaultThrottlePolicy
	edit(&p)
	return p
}

// testClock is the identity feature's clock, moved by tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *testClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// harness is the identity feature wired as serve wires it, behind a real
// HTTP server built by porthttp.NewHandler, on a fresh database.
type harness struct {
	t     testing.TB
	url   string
	dbURL string
	pool  *pgxpool.Pool
	clock *testClock
	logs  *syncBuffer
	out   *syncBuffer
	id    *identity
	users *postgres.Users
	// client checks every answer against api/openapi.yaml.
	client *http.Client
}

// newHarness wires the identity feature with policy; opts turn further
// knobs.
func newHarness(t testing.TB, policy domain.ThrottlePolicy, getenv env, dev bool, opts ...func(*identityDeps)) *harness {
	t.Helper()
	pool, dbURL := testdb.New(t)
	h := &harness{t: t, dbURL: dbURL, pool: pool, clock: &testClock{t: time.Now().UTC()}, logs: &syncBuffer{}, out: &syncBuffer{},
		client: apispec.Client(t)}
	if _, bench := t.(*testing.B); bench {
		h.client = http.DefaultClient // benchmarks time the server, not the check
	}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log)
	t.Cleanup(func() { slog.SetDefault(prev) })
	cfg := config{SecretKey: testSecretKey, EncryptionKey: []byte("0123456789abcdef0123456789abcdef"), Dev: dev}
	store := eventstore.New(pool)
	keys, err := newKeyring(cfg.EncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	deps := identityDeps{clock: h.clock, policy: policy, tokenTTL: 15 * time.Minute,
		hasher: argon2id.New(argon2id.OWASP, 0), settleEvery: time.Hour}
	for _, o := range opts {
		o(&deps)
	}
	id, err := wireIdentity(context.Background(), cfg, getenv, store, keys, h.out, log, deps)
	if err != nil {
		t.Fatal(err)
	}
	h.id = id
	h.users = postgres.NewUsers(store, 0)
	adminOnly := func(r *mux.Router) {
		r.Handle("/test/admin-only", id.auth.RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			porthttp.WriteJSON(w, http.StatusOK, map[string]string{"user_id": app.CallerFrom(r.Context()).UserID})
		}))).Methods(http.MethodGet)
	}
	srv := httptest.NewServer(porthttp.NewHandler(porthttp.Options{
		Version: "test", Health: pool, Registry: prometheus.NewRegistry(), Logger: log, TrustProxyHeaders: true,
	}, id.routes, adminOnly))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// createUser creates a user directly through the app, as the CLI does.
func (h *harness) createUser(email, role, password string) string {
	h.t.Helper()
	ctx := app.WithCaller(context.Background(), cliCaller())
	u, err := app.NewCreateUserHandler(h.users, argon2id.New(argon2id.OWASP, 0)).
		Handle(ctx, app.CreateUser{Email: email, Role: role, Password: domain.NewSecret(password)})
	if err != nil {
		h.t.Fatal(err)
	}
	return u.ID
}

type apiResponse struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (r apiResponse) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (h *harness) do(method, path, contentType, body, token, ip string) apiResponse {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ip != "" {
		req.Header.Set("X-Real-IP", ip)
	}
	client := h.client
	if strings.HasPrefix(path, "/test/") {
		client = http.DefaultClient // routes only tests add are not the API's
	}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := apiResponse{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// login posts the runbook's form.
func (h *harness) login(email, password, otp, ip string) apiResponse {
	h.t.Helper()
	form := url.Values{"username": {email}, "password": {password}}
	if otp != "" {
		form.Set("otp", otp)
	}
	return h.do(http.MethodPost, "/auth/login", "application/x-www-form-urlencoded", form.Encode(), "", ip)
}

func (h *harness) mustLogin(email, password, otp string) string {
	h.t.Helper()
	r := h.login(email, password, otp, "")
	tok, _ := r.body["access_token"].(string)
	if r.status != http.StatusOK || tok == "" {
		h.t.Fatalf("login %s: %d %s", email, r.status, r.raw)
	}
	return tok
}

func (h *harness) code(secret string) string {
	h.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, h.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// events returns every stored event's type, payload and metadata.
func (h *harness) events() []storedEvent {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT stream_id, event_type, schema_version, payload::text, metadata::text FROM watermill_events ORDER BY "offset"`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		if err := rows.Scan(&e.stream, &e.typ, &e.version, &e.payload, &e.metadata); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

type storedEvent struct {
	stream, typ, payload, metadata string
	version                        int
}

func (h *harness) eventsOfType(typ string) []storedEvent {
	var out []storedEvent
	for _, e := range h.events() {
		if e.typ == typ {
			out = append(out, e)
		}
	}
	return out
}

func wantError(t testing.TB, r apiResponse, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("got %d %s, want %d %q", r.status, r.raw, status, code)
	}
}

const form = "application/x-www-form-urlencoded"

func TestLoginAndMe(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	id := h.createUser("Op@Example.com", "operator", "correct horse battery")

	r := h.login("OP@example.COM", "correct horse battery", "", "")
	if r.status != http.StatusOK || r.body["token_type"] != "bearer" || r.body["expires_in"] != float64(900) {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("token response is cacheable")
	}
	tok := r.body["access_token"].(string)
	me := h.do(http.MethodGet, "/users/me", "", "", tok, "")
	want := map[string]any{"id": id, "email": "op@example.com", "role": "operator", "risk_profile": "model2", "totp_enabled": false}
	if me.status != http.StatusOK || fmt.Sprint(me.body) != fmt.Sprint(want) {
		t.Fatalf("/users/me: %d %s", me.status, me.raw)
	}

	// The success is an event with the attempted email and the actor.
	evs := h.eventsOfType(domain.EventLoginSuccess)
	if len(evs) != 1 || evs[0].stream != domain.LoginStream(testUsernames.Hash("op@example.com")) || evs[0].version != 1 ||
		!strings.Contains(evs[0].payload, `"email":"op@example.com"`) || !strings.Contains(evs[0].metadata, id) {
		t.Fatalf("login success events: %+v", evs)
	}

	wantError(t, h.do(http.MethodPost, "/auth/login", "application/json", `{"username":"op@example.com","password":"correct horse battery"}`, "", ""),
		http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantError(t, h.do(http.MethodPost, "/auth/login", form, "username=op%40example.com", "", ""), http.StatusBadRequest, "missing_field")
	wantError(t, h.do(http.MethodPost, "/auth/login", form, "username=x&password="+strings.Repeat("a", 70<<10), "", ""),
		http.StatusRequestEntityTooLarge, "body_too_large")
	// Credentials in the query string are not read.
	wantError(t, h.do(http.MethodPost, "/auth/login?username=op%40example.com&password=correct+horse+battery", form, "", "", ""),
		http.StatusBadRequest, "missing_field")
}

func TestNoUserEnumeration(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	h.createUser("known@example.com", "operator", "correct horse battery")
	start := time.Now()
	unknown := h.login("nobody@example.com", "whatever-password", "", "10.0.0.1")
	tUnknown := time.Since(start)
	start = time.Now()
	wrong := h.login("known@example.com", "whatever-password", "", "10.0.0.2")
	tWrong := time.Since(start)
	wantError(t, unknown, http.StatusUnauthorized, "invalid_credentials")
	wantError(t, wrong, http.StatusUnauthorized, "invalid_credentials")
	if unknown.raw != wrong.raw {
		t.Fatalf("bodies differ:\n%s\n%s", unknown.raw, wrong.raw)
	}
	t.Logf("unknown email %v, wrong password %v (both verify one argon2id hash)", tUnknown, tWrong)
	for _, e := range h.eventsOfType(domain.EventLoginFailure) {
		if !strings.Contains(e.payload, `"reason":"invalid_credentials"`) {
			t.Fatalf("failure event: %s", e.payload)
		}
	}
}

func TestTwoFactorFlowAndReplay(t *testing.T) {
	// The flow fails more codes than the default throttle lets pass without
	// a delay; throttling is tested elsewhere.
	h := newHarness(t, policyWith(func(p *domain.ThrottlePolicy) { p.FreeFailures = 10 }), envOf(nil), false)
	h.createUser("tfa@example.com", "operator", "correct horse battery")
	tok := h.mustLogin("tfa@example.com", "correct horse battery", "")

	setup := h.do(http.MethodPost, "/auth/2fa/setup", "", "", tok, "")
	secret, _ := setup.body["secret"].(string)
	otpURL, _ := setup.body["otpauth_url"].(string)
	if setup.status != http.StatusOK || secret == "" || !strings.HasPrefix(otpURL, "otpauth://totp/tradeops:tfa@example.com?") ||
		!strings.Contains(otpURL, "issuer=tradeops") {
		t.Fatalf("setup: %d %s", setup.status, setup.raw)
	}
	// Not active until enabled: password alone still logs in.
	h.mustLogin("tfa@example.com", "correct horse battery", "")

	wantError(t, h.do(http.MethodPost, "/auth/2fa/enable", "application/json", `{"otp":"000000"}`, tok, ""), http.StatusBadRequest, "otp_invalid")
	wantError(t, h.do(http.MethodPost, "/auth/2fa/enable", "application/json", `{"otp":123456}`, tok, ""), http.StatusBadRequest, "invalid_field")
	enableCode := h.code(secret)
	r := h.do(http.MethodPost, "/auth/2fa/enable", "application/json", `{"otp":"`+enableCode+`"}`, tok, "")
	if r.status != http.StatusOK || r.raw != "{\"totp_enabled\":true}\n" {
		t.Fatalf("enable: %d %s", r.status, r.raw)
	}
	// A 2FA change revokes the tokens issued before it.
	wantError(t, h.do(http.MethodGet, "/users/me", "", "", tok, ""), http.StatusUnauthorized, "unauthorized")

	wantError(t, h.login("tfa@example.com", "correct horse battery", "", ""), http.StatusUnauthorized, "otp_required")
	wantError(t, h.login("tfa@example.com", "correct horse battery", "000000", ""), http.StatusUnauthorized, "otp_invalid")
	// The code that enabled 2FA was used: replaying it in its window fails.
	wantError(t, h.login("tfa@example.com", "correct horse battery", enableCode, ""), http.StatusUnauthorized, "otp_invalid")
	// A wrong password with a right code is still just invalid credentials.
	h.clock.Advance(30 * time.Second)
	code := h.code(secret)
	wantError(t, h.login("tfa@example.com", "wrong password!!", code, ""), http.StatusUnauthorized, "invalid_credentials")
	tok = h.mustLogin("tfa@example.com", "correct horse battery", code)
	// Replay of an accepted login code.
	wantError(t, h.login("tfa@example.com", "correct horse battery", code, ""), http.StatusUnauthorized, "otp_invalid")
	me := h.do(http.MethodGet, "/users/me", "", "", tok, "")
	if me.body["totp_enabled"] != true {
		t.Fatalf("me: %s", me.raw)
	}
	wantError(t, h.do(http.MethodPost, "/auth/2fa/setup", "", "", tok, ""), http.StatusConflict, "2fa_already_enabled")

	// Disabling needs a fresh valid code too.
	wantError(t, h.do(http.MethodPost, "/auth/2fa/disable", "application/json", `{"otp":"`+code+`"}`, tok, ""), http.StatusBadRequest, "otp_invalid")
	h.clock.Advance(30 * time.Second)
	r = h.do(http.MethodPost, "/auth/2fa/disable", "application/json", `{"otp":"`+h.code(secret)+`"}`, tok, "")
	if r.status != http.StatusOK || r.raw != "{\"totp_enabled\":false}\n" {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}
	h.mustLogin("tfa@example.com", "correct horse battery", "")

	var types []string
	for _, e := range h.events() {
		if strings.HasPrefix(e.stream, "user-") {
			types = append(types, e.typ)
		}
	}
	want := []string{domain.EventUserCreated, domain.EventTwoFactorSetup, domain.EventTwoFactorEnabled, domain.EventTwoFactorDisabled}
	if !slices.Equal(types, want) {
		t.Fatalf("user stream: %v, want %v", types, want)
	}
	reasons := map[string]int{}
	for _, e := range h.eventsOfType(domain.EventLoginFailure) {
		var p domain.LoginFailed
		_ = json.Unmarshal([]byte(e.payload), &p)
		reasons[p.Reason]++
	}
	if reasons["otp_required"] != 1 || reasons["otp_invalid"] != 3 || reasons["invalid_credentials"] != 1 {
		t.Fatalf("failure reasons: %v", reasons)
	}
	if n := len(h.eventsOfType(domain.EventTwoFactorFailure)); n != 2 {
		t.Fatalf("auth.2fa.failure events: %d, want 2", n)
	}
}

// forge signs claims with method and key.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokensRejected(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	id := h.createUser("tok@example.com", "operator", "correct horse battery")
	good := h.mustLogin("tok@example.com", "correct horse battery", "")
	now := h.clock.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "tradeops", "aud": []string{"tradeops-api"}, "sub": id, "jti": "x",
			"iat": float64(now.UnixMicro()) / 1e6, "exp": now.Add(time.Minute).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	// The forging works: the same claims under HS256 and the real key pass.
	if r := h.do(http.MethodGet, "/users/me", "", "", forge(t, jwt.SigningMethodHS256, testSecretKey, claims(nil)), ""); r.status != http.StatusOK {
		t.Fatalf("control token: %d %s", r.status, r.raw)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1][:len(parts[1])-2] + "x" + parts[1][len(parts[1])-1:] + "." + parts[2]
	cases := map[string]string{
		"alg none":       none,
		"HS512":          forge(t, jwt.SigningMethodHS512, testSecretKey, claims(nil)),
		"RS256":          forge(t, jwt.SigningMethodRS256, rsaKey, claims(nil)),
		"other key":      forge(t, jwt.SigningMethodHS256, []byte("another-secret-key-of-32-bytes-or-more"), claims(nil)),
		"expired":        forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() })),
		"no exp":         forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { delete(c, "exp") })),
		"no iat":         forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { delete(c, "iat") })),
		"wrong issuer":   forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { c["iss"] = "evil" })),
		"wrong aud":      forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { c["aud"] = "other-api" })),
		"unknown user":   forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { c["sub"] = "00000000-0000-0000-0000-000000000000" })),
		"sub not a uuid": forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { c["sub"] = "admin" })),
		"nbf in future":  forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })),
		"iat in future":  forge(t, jwt.SigningMethodHS256, testSecretKey, claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })),
		"tampered":       tampered,
		"garbage":        "not.a.token",
		"empty bearer":   "",
		"basic, not JWT": "",
	}
	for name, tok := range cases {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/users/me", nil)
		switch name {
		case "empty bearer":
			req.Header.Set("Authorization", "Bearer ")
		case "basic, not JWT":
			req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
		default:
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || body["error"]["code"] != "unauthorized" ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: got %d %v (WWW-Authenticate %q)", name, resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Expiry by the clock: the real token dies after 15 minutes.
	h.clock.Advance(15*time.Minute + time.Second)
	wantError(t, h.do(http.MethodGet, "/users/me", "", "", good, ""), http.StatusUnauthorized, "unauthorized")
}

// TestLogoutRevokesWithinTheSameSecond: a token issued in the same second as
// a logout but before it is rejected; one issued after it in that second is
// accepted.
func TestLogoutRevokesWithinTheSameSecond(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	h.createUser("out@example.com", "operator", "correct horse battery")
	sec := h.clock.Now().Truncate(time.Second).Add(time.Second)
	h.clock.Set(sec.Add(100 * time.Millisecond))
	before := h.mustLogin("out@example.com", "correct horse battery", "")
	other := h.mustLogin("out@example.com", "correct horse battery", "")
	if r := h.do(http.MethodGet, "/users/me", "", "", before, ""); r.status != http.StatusOK {
		t.Fatalf("fresh token: %d", r.status)
	}
	h.clock.Set(sec.Add(500 * time.Millisecond))
	if r := h.do(http.MethodPost, "/auth/logout", "", "", before, ""); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	wantError(t, h.do(http.MethodGet, "/users/me", "", "", before, ""), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.do(http.MethodGet, "/users/me", "", "", other, ""), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.do(http.MethodPost, "/auth/logout", "", "", before, ""), http.StatusUnauthorized, "unauthorized")
	h.clock.Set(sec.Add(700 * time.Millisecond))
	after := h.mustLogin("out@example.com", "correct horse battery", "")
	if r := h.do(http.MethodGet, "/users/me", "", "", after, ""); r.status != http.StatusOK {
		t.Fatalf("token issued after the logout, same second: %d %s", r.status, r.raw)
	}
	if n := len(h.eventsOfType(domain.EventLogout)); n != 1 {
		t.Fatalf("auth.logout events: %d", n)
	}
}

func TestAdminRouteForbidsOperators(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	h.createUser("admin@example.com", "admin", "correct horse battery")
	opID := h.createUser("op@example.com", "operator", "correct horse battery")
	admin := h.mustLogin("admin@example.com", "correct horse battery", "")
	op := h.mustLogin("op@example.com", "correct horse battery", "")
	if r := h.do(http.MethodGet, "/test/admin-only", "", "", admin, ""); r.status != http.StatusOK {
		t.Fatalf("admin: %d %s", r.status, r.raw)
	}
	wantError(t, h.do(http.MethodGet, "/test/admin-only", "", "", op, ""), http.StatusForbidden, "forbidden")
	r := h.do(http.MethodGet, "/test/admin-only", "", "", "", "")
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	// A role change (CLI) takes effect at once in this process.
	ctx := app.WithCaller(context.Background(), cliCaller())
	if err := app.NewChangeRoleHandler(h.users).Handle(ctx, app.ChangeRole{Email: "op@example.com", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	// h.users is another instance than the server's (as the CLI is another
	// process): the server's cache lags at most accessCacheTTL.
	time.Sleep(accessCacheTTL + 100*time.Millisecond)
	if r := h.do(http.MethodGet, "/test/admin-only", "", "", op, ""); r.status != http.StatusOK || r.body["user_id"] != opID {
		t.Fatalf("promoted operator: %d %s", r.status, r.raw)
	}
}

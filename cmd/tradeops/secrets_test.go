package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/tradeops/tradeops/adapters/keyring"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/apispec"
	"github.com/tradeops/tradeops/internal/testdb"
)

// deployment is a database and the serve processes started on it, one at a
// time, as in production: each restart is a new run() with its own
// environment. Every log line, CLI output and response body is kept for
// the leak checks.
type deployment struct {
	t      *testing.T
	pool   *pgxpool.Pool
	dbURL  string
	secret string
	output *syncBuffer // serve's and the CLI's stdout and stderr
	mu     sync.Mutex
	bodies []string
	base   string
	stop   func()
	// env is added to serve's environment, args to its arguments.
	env  map[string]string
	args []string
}

func newDeployment(t *testing.T) *deployment {
	pool, url := testdb.New(t)
	d := &deployment{t: t, pool: pool, dbURL: url, secret: base64.StdEncoding.EncodeToString(randomBytes(32)), output: &syncBuffer{}}
	t.Cleanup(func() {
		if d.stop != nil {
			d.stop()
		}
	})
	return d
}

// serve (re)starts the server under encryptionKey and waits until the API
// answers.
func (d *deployment) serve(encryptionKey string) {
	d.t.Helper()
	if d.stop != nil {
		d.stop()
	}
	addr := freeAddr(d.t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		e := map[string]string{"DATABASE_URL": d.dbURL, "SECRET_KEY": d.secret, "ENCRYPTION_KEY": encryptionKey, "LISTEN_ADDR": addr}
		for k, v := range d.env {
			e[k] = v
		}
		done <- run(ctx, append([]string{"tradeops", "serve"}, d.args...), envOf(e), nil, d.output, d.output)
	}()
	d.base = "http://" + addr
	d.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				d.t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			d.t.Error("serve did not stop")
		}
		d.stop = nil
	}
	waitStatus(d.t, d.base+"/users/me", http.StatusUnauthorized, "unauthorized")
}

// cli runs a tradeops command with the database and extra environment.
func (d *deployment) cli(stdin string, extraEnv map[string]string, args ...string) (string, error) {
	d.t.Helper()
	e := map[string]string{"DATABASE_URL": d.dbURL}
	for k, v := range extraEnv {
		e[k] = v
	}
	var out syncBuffer
	err := run(context.Background(), append([]string{"tradeops"}, args...), envOf(e), strings.NewReader(stdin), io.MultiWriter(&out, d.output), d.output)
	return out.String(), err
}

func (d *deployment) createUser(email, role, password string) {
	d.t.Helper()
	if _, err := d.cli(password, nil, "users", "create", "--email", email, "--role", role, "--password-stdin"); err != nil {
		d.t.Fatal(err)
	}
}

func (d *deployment) call(method, path, token, body string) apiResponse {
	d.t.Helper()
	return d.send(method, path, token, body, nil)
}

// send is call with extra request headers.
func (d *deployment) send(method, path, token, body string, header http.Header) apiResponse {
	d.t.Helper()
	req, err := http.NewRequest(method, d.base+path, strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	switch {
	case strings.HasPrefix(body, "username="):
		req.Header.Set("Content-Type", form)
	case body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := apispec.Client(d.t).Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	d.mu.Lock()
	d.bodies = append(d.bodies, string(raw))
	d.mu.Unlock()
	out := apiResponse{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func (d *deployment) login(email, password, code string) string {
	d.t.Helper()
	body := "username=" + email + "&password=" + password
	if code != "" {
		body += "&otp=" + code
	}
	r := d.call(http.MethodPost, "/auth/login", "", body)
	tok, _ := r.body["access_token"].(string)
	if r.status != http.StatusOK || tok == "" {
		d.t.Fatalf("login %s: %d %s", email, r.status, r.raw)
	}
	return tok
}

// reencrypt posts the runbook's body verbatim.
func (d *deployment) reencrypt(adminToken, oldKey, newKey string, dryRun bool) apiResponse {
	d.t.Helper()
	return d.call(http.MethodPost, "/ops/security/reencrypt-exchange-secrets", adminToken,
		fmt.Sprintf("{\"old_key\":\"%s\",\"new_key\":\"%s\",\"dry_run\":%t}", oldKey, newKey, dryRun))
}

func (d *deployment) mustStatus(r apiResponse, status int) apiResponse {
	d.t.Helper()
	if r.status != status {
		d.t.Fatalf("got %d %s, want %d", r.status, r.raw, status)
	}
	return r
}

// secretsStatus is GET /users/exchange-secrets as exchange -> entry.
func (d *deployment) secretsStatus(token string) map[string]map[string]any {
	d.t.Helper()
	r := d.mustStatus(d.call(http.MethodGet, "/users/exchange-secrets", token, ""), http.StatusOK)
	list, _ := r.body["secrets"].([]any)
	out := map[string]map[string]any{}
	var order []string
	for _, e := range list {
		m := e.(map[string]any)
		out[m["exchange"].(string)] = m
		order = append(order, m["exchange"].(string))
	}
	if strings.Join(order, ",") != "BINANCE,IBKR" {
		d.t.Fatalf("status lists %v, want both exchanges", order)
	}
	return out
}

// openCredentials decrypts a user's stored credentials with k, as the
// server holding that key does.
func (d *deployment) openCredentials(k app.Keyring, userID string, ex domain.Exchange) domain.ExchangeCredentials {
	d.t.Helper()
	creds, err := app.NewOpenExchangeCredentialsHandler(postgres.NewExchangeSecrets(eventstore.New(d.pool)), k).Handle(context.Background(), userID, ex)
	if err != nil {
		d.t.Fatalf("open %s credentials under key %s: %v", ex, k.KeyID(), err)
	}
	return creds
}

func (d *deployment) keyringEvents() []string {
	d.t.Helper()
	evs, err := eventstore.New(d.pool).ReadStream(context.Background(), nil, domain.KeyringStream, 0)
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, strings.TrimPrefix(e.Type, "security.key_rotation."))
	}
	return out
}

// otpCodes hands out TOTP codes for successive time steps, each usable
// once, as an authenticator app would over time; it waits for the clock
// when the window (now ±1 step) is used up.
type otpCodes struct {
	secret string
	last   int64
}

func (o *otpCodes) next(t *testing.T) string {
	t.Helper()
	for {
		now := time.Now()
		cur := now.Unix() / 30
		// Not in the last two seconds of a step: the server's clock must
		// see the same window.
		if now.Unix()%30 < 28 {
			if step := max(o.last+1, cur-1); step <= cur+1 {
				o.last = step
				code, err := hotp.GenerateCodeCustom(o.secret, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
				if err != nil {
					t.Fatal(err)
				}
				return code
			}
		}
		time.Sleep(time.Until(time.Unix((cur+1)*30, 0)) + 100*time.Millisecond)
	}
}

type testKey struct {
	raw     []byte
	encoded string // as given to ENCRYPTION_KEY and the API
	ring    *keyring.Keyring
}

func newTestKey(t *testing.T, enc *base64.Encoding) testKey {
	t.Helper()
	raw := randomBytes(32)
	k, err := keyring.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{raw: raw, encoded: enc.EncodeToString(raw), ring: k}
}

// forms are the ways a key could leak.
func (k testKey) forms() []string {
	return []string{base64.StdEncoding.EncodeToString(k.raw), base64.URLEncoding.EncodeToString(k.raw),
		base64.RawStdEncoding.EncodeToString(k.raw), base64.RawURLEncoding.EncodeToString(k.raw), hex.EncodeToString(k.raw), string(k.raw)}
}

// The runbook (§6–§7) through real serve processes: configure secrets, dry
// run, apply, restart with the new key, decrypt, restart with the old key
// (rollback: recorded, rotation frozen), decrypt, unfreeze, switch again,
// prune. Along the way, no canary secret and neither key reaches a log, an
// event, the audit log or a response.
func TestRotationRunbookThroughServe(t *testing.T) {
	d := newDeployment(t)
	oldKey, newKey := newTestKey(t, base64.StdEncoding), newTestKey(t, base64.URLEncoding)
	const (
		binanceKey    = "CANARYbinanceKEY000000000000000000000000000000000000000000001abc"
		binanceSecret = "CANARYbinanceSECRET0000000000000000000000000000000000000000002"
		ibkrAccount   = "DUCANARY7654321"
		ibkrKey       = "CANARYibkrKEY0000000000000003wxyz"
	)
	canaries := []string{binanceKey, binanceSecret, ibkrAccount, ibkrKey}

	d.createUser("admin@example.com", "admin", "admin password 123")
	d.createUser("op@example.com", "operator", "operator password 123")
	d.serve(oldKey.encoded)
	admin := d.login("admin@example.com", "admin password 123", "")
	token := d.login("op@example.com", "operator password 123", "")
	opID := d.mustStatus(d.call(http.MethodGet, "/users/me", token, ""), http.StatusOK).body["id"].(string)

	// Configure secrets and 2FA; the status reads its own writes.
	d.mustStatus(d.call(http.MethodPut, "/users/exchange-secrets/BINANCE", token,
		fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, binanceKey, binanceSecret)), http.StatusOK)
	d.mustStatus(d.call(http.MethodPut, "/users/exchange-secrets/ibkr", token,
		fmt.Sprintf(`{"account_id":%q,"api_key":%q}`, ibkrAccount, ibkrKey)), http.StatusOK)
	st := d.secretsStatus(token)
	if st["BINANCE"]["status"] != "configured" || st["BINANCE"]["api_key_hint"] != "****1abc" || st["IBKR"]["api_key_hint"] != "****wxyz" ||
		st["IBKR"]["key_id"] != oldKey.ring.KeyID() {
		t.Fatalf("status %v", st)
	}
	setup := d.mustStatus(d.call(http.MethodPost, "/auth/2fa/setup", token, ""), http.StatusOK)
	seed := setup.body["secret"].(string)
	codes := &otpCodes{secret: seed}
	d.mustStatus(d.call(http.MethodPost, "/auth/2fa/enable", token, `{"otp":"`+codes.next(t)+`"}`), http.StatusOK)
	const sealed = 2 + 2 + 1 // Binance and IBKR fields, the TOTP seed

	// §6.1 dry run: scanned > 0 and updated == scanned; nothing written.
	dry := d.mustStatus(d.reencrypt(admin, oldKey.encoded, newKey.encoded, true), http.StatusOK)
	if dry.body["scanned"] != float64(sealed) || dry.body["updated"] != float64(sealed) || dry.body["dry_run"] != true ||
		dry.body["old_key_id"] != oldKey.ring.KeyID() || dry.body["new_key_id"] != newKey.ring.KeyID() || dry.body["server_key_id"] != oldKey.ring.KeyID() {
		t.Fatalf("dry run: %s", dry.raw)
	}
	// §6.2 apply.
	applied := d.mustStatus(d.reencrypt(admin, oldKey.encoded, newKey.encoded, false), http.StatusOK)
	if applied.body["updated"] != float64(sealed) || applied.body["failed_count"] != float64(0) {
		t.Fatalf("apply: %s", applied.raw)
	}
	// Before the restart, the operator checks nothing lacks the new key.
	out, err := d.cli("", map[string]string{"ENCRYPTION_KEY": newKey.encoded}, "keys", "status")
	if err != nil || !strings.Contains(out, fmt.Sprintf("sealed values (exchange secret fields and TOTP seeds): %d", sealed)) ||
		!hasRow(out, newKey.ring.KeyID(), fmt.Sprint(sealed), "0", "(running)") || !hasRow(out, oldKey.ring.KeyID(), fmt.Sprint(sealed), "0") {
		t.Fatalf("keys status: %v\n%s", err, out)
	}

	// §6.3 restart with the new key: everything decrypts.
	d.serve(newKey.encoded)
	token = d.login("op@example.com", "operator password 123", codes.next(t))
	if st := d.secretsStatus(token); st["BINANCE"]["status"] != "configured" || st["IBKR"]["status"] != "configured" {
		t.Fatalf("status under the new key: %v", st)
	}
	if c := d.openCredentials(newKey.ring, opID, domain.ExchangeBinance); c.Field("api_secret").Reveal() != binanceSecret {
		t.Fatal("Binance secret changed under the new key")
	}
	if c := d.openCredentials(newKey.ring, opID, domain.ExchangeIBKR); c.Field("account_id").Reveal() != ibkrAccount {
		t.Fatal("IBKR account changed under the new key")
	}

	// §7 rollback: the old key again. Decrypting works; the rollback is
	// recorded and freezes rotation.
	d.serve(oldKey.encoded)
	if !strings.Contains(d.output.String(), "KEY ROTATION ROLLED BACK") {
		t.Fatal("no rollback warning in the log")
	}
	token = d.login("op@example.com", "operator password 123", codes.next(t))
	admin = d.login("admin@example.com", "admin password 123", "")
	if c := d.openCredentials(oldKey.ring, opID, domain.ExchangeBinance); c.Field("api_key").Reveal() != binanceKey {
		t.Fatal("Binance key changed under the old key")
	}
	if got := strings.Join(d.keyringEvents(), ","); got != "reencrypt,reencrypt,activated,rollback" {
		t.Fatalf("keyring stream: %s", got)
	}
	frozen := d.reencrypt(admin, oldKey.encoded, newKey.encoded, false)
	wantError(t, frozen, http.StatusConflict, "rotation_frozen")
	if msg := frozen.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, newKey.ring.KeyID()) || !strings.Contains(msg, oldKey.ring.KeyID()) {
		t.Fatalf("frozen message names no key ids: %s", msg)
	}
	d.mustStatus(d.reencrypt(admin, oldKey.encoded, newKey.encoded, true), http.StatusOK) // dry runs stay allowed
	out, _ = d.cli("", nil, "keys", "status")
	if !strings.Contains(out, "rotation FROZEN") {
		t.Fatalf("keys status while frozen:\n%s", out)
	}
	if _, err := d.cli("", nil, "keys", "unfreeze", "--incident", "INC-123", "--reason", "decrypt failures after the switch; RCA done"); err != nil {
		t.Fatal(err)
	}
	if r := d.mustStatus(d.reencrypt(admin, oldKey.encoded, newKey.encoded, false), http.StatusOK); r.body["already_current"] != float64(sealed) {
		t.Fatalf("apply after unfreeze: %s", r.raw)
	}

	// The switch again, confirmed: prune the old key.
	d.serve(newKey.encoded)
	if _, err := d.cli("", nil, "keys", "prune", "--keep", oldKey.ring.KeyID()+"x"); err == nil {
		t.Fatal("prune accepted a malformed key id")
	}
	out, err = d.cli("", nil, "keys", "prune", "--keep", newKey.ring.KeyID())
	if err != nil || !strings.Contains(out, fmt.Sprintf("dropped %d ciphertexts under key id %s", sealed, oldKey.ring.KeyID())) {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	d.login("admin@example.com", "admin password 123", "")
	// The status names the key the secrets are now under (token: issued
	// before the restarts, still valid).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := d.secretsStatus(token)
		if st["BINANCE"]["key_id"] == newKey.ring.KeyID() && st["IBKR"]["key_id"] == newKey.ring.KeyID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after the prune: %v", st)
		}
	}
	if c := d.openCredentials(newKey.ring, opID, domain.ExchangeIBKR); c.Field("api_key").Reveal() != ibkrKey {
		t.Fatal("IBKR key changed after the prune")
	}
	var seedRaw []byte
	if err := d.pool.QueryRow(context.Background(), `SELECT seed FROM user_totp WHERE user_id = $1`, opID).Scan(&seedRaw); err != nil {
		t.Fatal(err)
	}
	var seedSealed app.Sealed
	_ = json.Unmarshal(seedRaw, &seedSealed)
	if plain, err := newKey.ring.Open(seedSealed, app.SecretBinding{Owner: opID, Purpose: app.TOTPPurpose, Field: app.TOTPField}); err != nil || string(plain) != seed || len(seedSealed) != 1 {
		t.Fatalf("TOTP seed after the prune: %v", err)
	}
	if got := strings.Join(d.keyringEvents(), ","); got != "reencrypt,reencrypt,activated,rollback,reencrypt,unfrozen,reencrypt,activated,prune" {
		t.Fatalf("keyring stream: %s", got)
	}

	// Leaks: the audit log must have caught up before the check.
	waitAuditCaughtUp(t, d.pool)
	d.stop()
	if len(d.bodies) < 15 || !strings.Contains(d.output.String(), `"msg":"request"`) {
		t.Fatalf("captured too little: %d bodies", len(d.bodies))
	}
	d.checkNoLeak(append(canaries, append(oldKey.forms(), newKey.forms()...)...), seed)
}

// hasRow reports whether a table line starts with id followed by cols.
func hasRow(out, id string, cols ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == len(cols)+1 && f[0] == id && strings.Join(f[1:], " ") == strings.Join(cols, " ") {
			return true
		}
	}
	return false
}

func waitAuditCaughtUp(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var behind bool
		if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM watermill_events) > (SELECT count(*) FROM audit_log)`).Scan(&behind); err != nil {
			t.Fatal(err)
		}
		if !behind {
			return
		}
	}
	t.Fatal("the audit log did not catch up")
}

// checkNoLeak fails when a canary appears in the captured output, a
// response body, an event's payload or metadata, or the audit log. The
// TOTP seed (when given) is allowed in exactly one place: the setup
// response that shows it to its owner.
func (d *deployment) checkNoLeak(canaries []string, seed string) {
	d.t.Helper()
	ctx := context.Background()
	var stored strings.Builder
	for _, q := range []string{
		`SELECT string_agg(payload::text || metadata::text, E'\n') FROM watermill_events`,
		`SELECT string_agg(data::text, E'\n') FROM audit_log`,
		`SELECT string_agg(api_key_hint || key_id, E'\n') FROM exchange_secrets_status`,
		`SELECT string_agg(fields::text, E'\n') FROM exchange_secrets`,
	} {
		var s *string
		if err := d.pool.QueryRow(ctx, q).Scan(&s); err != nil {
			d.t.Fatal(err)
		}
		if s != nil {
			stored.WriteString(*s)
		}
	}
	seedShown := 0
	for _, b := range d.bodies {
		if seed != "" && strings.Contains(b, seed) {
			seedShown++
		}
	}
	places := map[string]string{"output": d.output.String(), "stored events, audit log and tables": stored.String(),
		"responses": strings.Join(d.bodies, "\n")}
	for where, text := range places {
		for i, c := range canaries {
			if strings.Contains(text, c) {
				d.t.Errorf("canary #%d leaked into %s", i, where)
			}
		}
		if seed != "" && where != "responses" && strings.Contains(text, seed) {
			d.t.Errorf("the TOTP seed leaked into %s", where)
		}
	}
	if seed != "" && seedShown != 1 {
		d.t.Errorf("the TOTP seed appears in %d responses, want only the setup", seedShown)
	}
}

// The exchange secrets API: both exchanges always listed, a GET right after
// a PUT or DELETE shows it, bad input is a 400 that appends nothing, the
// rotation endpoint is for admins and validates its keys without echoing them.
func TestExchangeSecretsAPI(t *testing.T) {
	d := newDeployment(t)
	key := newTestKey(t, base64.StdEncoding)
	d.createUser("admin@example.com", "admin", "admin password 123")
	d.createUser("op@example.com", "operator", "operator password 123")
	d.serve(key.encoded)
	admin := d.login("admin@example.com", "admin password 123", "")
	token := d.login("op@example.com", "operator password 123", "")

	wantError(t, d.call(http.MethodGet, "/users/exchange-secrets", "", ""), http.StatusUnauthorized, "unauthorized")
	if st := d.secretsStatus(token); st["BINANCE"]["status"] != "missing" || st["IBKR"]["status"] != "missing" || len(st["IBKR"]) != 2 {
		t.Fatalf("initial status %v", st)
	}
	// Read your writes, every time, with no pause.
	for i := range 5 {
		apiKey := fmt.Sprintf("APIKEY%010d%04d", i, 1000+i)
		put := d.mustStatus(d.call(http.MethodPut, "/users/exchange-secrets/binance", token,
			fmt.Sprintf(`{"api_key":%q,"api_secret":"s%d"}`, apiKey, i)), http.StatusOK)
		if put.body["exchange"] != "BINANCE" || put.body["status"] != "configured" || put.body["api_key_hint"] != fmt.Sprintf("****%d", 1000+i) ||
			put.body["key_id"] != key.ring.KeyID() || put.body["updated_at"] == nil {
			t.Fatalf("PUT: %s", put.raw)
		}
		st := d.secretsStatus(token)
		if st["BINANCE"]["api_key_hint"] != put.body["api_key_hint"] || st["BINANCE"]["updated_at"] != put.body["updated_at"] {
			t.Fatalf("GET right after PUT %d: %v, PUT said %s", i, st["BINANCE"], put.raw)
		}
		if r := d.call(http.MethodDelete, "/users/exchange-secrets/BINANCE", token, ""); r.status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", r.status, r.raw)
		}
		if st := d.secretsStatus(token); st["BINANCE"]["status"] != "missing" {
			t.Fatalf("GET right after DELETE %d: %v", i, st["BINANCE"])
		}
	}
	wantError(t, d.call(http.MethodDelete, "/users/exchange-secrets/BINANCE", token, ""), http.StatusNotFound, "exchange_secret_not_configured")

	var before int
	count := func() int {
		var n int
		if err := d.pool.QueryRow(context.Background(), `SELECT count(*) FROM watermill_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before = count()
	for name, c := range map[string]struct {
		path, body string
		status     int
		code       string
	}{
		"unknown exchange":      {"/users/exchange-secrets/kraken", `{"api_key":"CANARYKEY123","api_secret":"x"}`, 400, "unknown_exchange"},
		"NUL in the path":       {"/users/exchange-secrets/BIN%00ANCE", `{"api_key":"CANARYKEY123","api_secret":"x"}`, 400, "invalid_encoding"},
		"bad bytes in the path": {"/users/exchange-secrets/%ff%fe", `{"api_key":"CANARYKEY123","api_secret":"x"}`, 400, "invalid_encoding"},
		"missing secret":        {"/users/exchange-secrets/BINANCE", `{"api_key":"CANARYKEY123"}`, 400, "missing_field"},
		"NUL in a field":        {"/users/exchange-secrets/BINANCE", `{"api_key":"CANARY\u0000KEY123","api_secret":"x"}`, 400, "invalid_encoding"},
		"non-ASCII secret":      {"/users/exchange-secrets/BINANCE", `{"api_key":"CANARYKEY123","api_secret":"CANARY\u00e9"}`, 400, "invalid_field"},
		"oversized key":         {"/users/exchange-secrets/BINANCE", `{"api_key":"` + strings.Repeat("K", 600) + `","api_secret":"x"}`, 400, "invalid_field"},
		"wrong type":            {"/users/exchange-secrets/BINANCE", `{"api_key":12345678,"api_secret":"x"}`, 400, "invalid_field"},
		"unknown field":         {"/users/exchange-secrets/BINANCE", `{"api_key":"CANARYKEY123","api_secret":"x","passphrase":"y"}`, 400, "unknown_field"},
		"IBKR field on Binance": {"/users/exchange-secrets/BINANCE", `{"api_key":"CANARYKEY123","api_secret":"x","account_id":"DU1"}`, 400, "unknown_field"},
		"bad IBKR account":      {"/users/exchange-secrets/IBKR", `{"account_id":"du-123"}`, 400, "invalid_field"},
		"empty body":            {"/users/exchange-secrets/IBKR", ``, 400, "malformed_json"},
	} {
		r := d.call(http.MethodPut, c.path, token, c.body)
		if r.status != c.status || r.code() != c.code || strings.Contains(r.raw, "CANARY") {
			t.Errorf("%s: got %d %s, want %d %s", name, r.status, r.raw, c.status, c.code)
		}
	}
	if n := count(); n != before {
		t.Fatalf("rejected requests appended %d events", n-before)
	}

	// The rotation endpoint.
	other := newTestKey(t, base64.RawURLEncoding)
	wantError(t, d.reencrypt(token, key.encoded, other.encoded, true), http.StatusForbidden, "forbidden")
	for name, c := range map[string]struct{ body, code string }{
		"bad base64":      {fmt.Sprintf(`{"old_key":"%s!","new_key":%q,"dry_run":true}`, key.encoded, other.encoded), "invalid_key"},
		"short key":       {fmt.Sprintf(`{"old_key":%q,"new_key":%q,"dry_run":true}`, key.encoded, base64.StdEncoding.EncodeToString(other.raw[:16])), "invalid_key"},
		"weak key":        {fmt.Sprintf(`{"old_key":%q,"new_key":%q,"dry_run":true}`, key.encoded, base64.StdEncoding.EncodeToString(make([]byte, 32))), "invalid_key"},
		"patterned key":   {fmt.Sprintf(`{"old_key":%q,"new_key":%q,"dry_run":true}`, key.encoded, base64.StdEncoding.EncodeToString([]byte(strings.Repeat("0123456789abcdef", 2)))), "invalid_key"},
		"same key":        {fmt.Sprintf(`{"old_key":%q,"new_key":%q,"dry_run":true}`, key.encoded, base64.URLEncoding.EncodeToString(key.raw)), "same_key"},
		"missing key":     {fmt.Sprintf(`{"old_key":%q,"dry_run":true}`, key.encoded), "missing_field"},
		"missing dry_run": {fmt.Sprintf(`{"old_key":%q,"new_key":%q}`, key.encoded, other.encoded), "missing_field"},
		"wrong type":      {fmt.Sprintf(`{"old_key":%q,"new_key":%q,"dry_run":"yes"}`, key.encoded, other.encoded), "invalid_field"},
	} {
		r := d.call(http.MethodPost, "/ops/security/reencrypt-exchange-secrets", admin, c.body)
		if r.status != http.StatusBadRequest || r.code() != c.code {
			t.Errorf("%s: got %d %s, want 400 %s", name, r.status, r.raw, c.code)
		}
		for _, f := range append(key.forms(), other.forms()...) {
			if strings.Contains(r.raw, f) {
				t.Errorf("%s: the response echoes a key", name)
			}
		}
	}
	// A wrong old key claims what it cannot decrypt: every value fails,
	// naming key ids.
	d.mustStatus(d.call(http.MethodPut, "/users/exchange-secrets/IBKR", token, `{"account_id":"DU1234567"}`), http.StatusOK)
	r := d.mustStatus(d.reencrypt(admin, other.encoded, newTestKey(t, base64.StdEncoding).encoded, true), http.StatusOK)
	failed, _ := r.body["failed"].([]any)
	if r.body["scanned"] != float64(1) || r.body["failed_count"] != float64(1) || len(failed) != 1 ||
		!strings.Contains(failed[0].(map[string]any)["error"].(string), key.ring.KeyID()) {
		t.Fatalf("wrong old key: %s", r.raw)
	}
}

// tradeops keys: id prints the key id and nothing of the key; keys come
// from files only; -h prints usage; extra arguments are errors.
func TestKeysCLI(t *testing.T) {
	key := newTestKey(t, base64.StdEncoding)
	dir := t.TempDir()
	file := dir + "/key"
	if err := os.WriteFile(file, []byte(key.encoded+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	keys := func(env map[string]string, args ...string) error {
		out, errOut = syncBuffer{}, syncBuffer{}
		return run(context.Background(), append([]string{"tradeops", "keys"}, args...), envOf(env), nil, &out, &errOut)
	}
	for _, env := range []map[string]string{{"ENCRYPTION_KEY": key.encoded}, {"ENCRYPTION_KEY_FILE": file}} {
		if err := keys(env, "id"); err != nil || out.String() != key.ring.KeyID()+"\n" {
			t.Fatalf("keys id: %v %q", err, out.String())
		}
	}
	if err := keys(map[string]string{"ENCRYPTION_KEY": "c2hvcnQ="}, "id"); err == nil || strings.Contains(err.Error(), "c2hvcnQ=") {
		t.Fatalf("bad key: %v", err)
	}
	if err := keys(nil, "id"); err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
		t.Fatalf("no key: %v", err)
	}
	for _, sub := range []string{"-h", "status -h", "reencrypt -h", "prune -h", "unfreeze -h"} {
		if err := keys(nil, strings.Fields(sub)...); err != nil || !strings.Contains(out.String()+errOut.String(), "--old-key-file") {
			t.Fatalf("%s: %v %q", sub, err, out.String()+errOut.String())
		}
	}
	for _, args := range [][]string{
		{"reencrypt", "--old-key-file", file, "--new-key-file", file, key.encoded},
		{"id", "extra"},
		{"status", "extra"},
		{"reencrypt", "--old-key", key.encoded},
		{"reencrypt", "--old-key-file", key.encoded, "--new-key-file", file},
		{"reencrypt", "--old-key-file", file},
		{"prune"},
		{"unfreeze", "--incident", "INC-1"},
		{"rotate"},
	} {
		err := keys(map[string]string{"ENCRYPTION_KEY": key.encoded}, args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
		if err != nil && strings.Contains(err.Error()+out.String()+errOut.String(), key.encoded) {
			t.Errorf("%v: the key was echoed", args)
		}
	}
}

// The CLI's reencrypt does what the endpoint does, from key files.
func TestKeysReencryptCLI(t *testing.T) {
	d := newDeployment(t)
	oldKey, newKey := newTestKey(t, base64.StdEncoding), newTestKey(t, base64.StdEncoding)
	d.createUser("op@example.com", "operator", "operator password 123")
	d.serve(oldKey.encoded)
	token := d.login("op@example.com", "operator password 123", "")
	opID := d.mustStatus(d.call(http.MethodGet, "/users/me", token, ""), http.StatusOK).body["id"].(string)
	d.mustStatus(d.call(http.MethodPut, "/users/exchange-secrets/BINANCE", token, `{"api_key":"CLIKEY0000001234","api_secret":"cli-secret"}`), http.StatusOK)
	d.stop()
	dir := t.TempDir()
	oldFile, newFile := dir+"/old", dir+"/new"
	_ = os.WriteFile(oldFile, []byte(oldKey.encoded+"\n"), 0o600)
	_ = os.WriteFile(newFile, []byte(newKey.encoded), 0o600)
	var res map[string]any
	for _, c := range []struct {
		apply            bool
		updated, current float64
	}{{false, 2, 0}, {true, 2, 0}, {true, 0, 2}} {
		args := []string{"keys", "reencrypt", "--old-key-file", oldFile, "--new-key-file", newFile}
		if c.apply {
			args = append(args, "--apply")
		}
		out, err := d.cli("", map[string]string{"ENCRYPTION_KEY": oldKey.encoded}, args...)
		if err != nil || json.Unmarshal([]byte(out), &res) != nil || res["updated"] != c.updated || res["already_current"] != c.current ||
			res["dry_run"] != !c.apply || res["server_key_id"] != oldKey.ring.KeyID() {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	evs, _ := eventstore.New(d.pool).ReadStream(context.Background(), nil, domain.KeyringStream, 0)
	if len(evs) != 3 || evs[1].Metadata.ActorEmail != "cli" || !strings.Contains(string(evs[1].Data), `"operator":"`) {
		t.Fatalf("CLI events: %+v", evs)
	}
	if c := d.openCredentials(newKey.ring, opID, domain.ExchangeBinance); c.Field("api_secret").Reveal() != "cli-secret" {
		t.Fatal("secret changed")
	}
	d.checkNoLeak(append(oldKey.forms(), newKey.forms()...), "")
}

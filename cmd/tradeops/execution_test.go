package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/internal/apispec"
	"github.com/tradeops/tradeops/internal/fakebinance"
	"github.com/tradeops/tradeops/internal/fakeibkr"
)

// testPassword is the fixture users' password.
const testPassword = "correct horse battery staple 42"

// execFixture is serve on a fresh database, talking to a fake Binance and
// (with a gateway) a fake IBKR Client Portal gateway over self-signed TLS,
// with an operator under each risk profile.
type execFixture struct {
	*deployment
	binance       *fakebinance.Server
	gateway       *fakeibkr.Gateway
	key           string // ENCRYPTION_KEY
	model2, loose string // access tokens
}

type fixtureOpts struct {
	gateway bool
	env     map[string]string
	symbols []fakebinance.Symbol
}

func newExecFixture(t *testing.T, o fixtureOpts) *execFixture {
	t.Helper()
	f := &execFixture{deployment: newDeployment(t), key: base64.StdEncoding.EncodeToString(randomBytes(32))}
	f.binance = fakebinance.New(fakebinance.Options{T: t, Symbols: o.symbols})
	f.env = map[string]string{
		"BINANCE_TESTNET_BASE_URL":  f.binance.URL(),
		"RISK_PROFILE_MODEL2_EMAIL": "model2@x.test",
		"RISK_PROFILE_LOOSE_EMAIL":  "loose@x.test",
	}
	if o.gateway {
		f.gateway = fakeibkr.StartTLS(t)
		f.env["IBKR_BRIDGE_BASE_URL"] = f.gateway.URL()
		f.env["IBKR_BRIDGE_INSECURE_TLS"] = "true"
	}
	for k, v := range o.env {
		f.env[k] = v
	}
	// Created before the start, which binds them to their profiles.
	f.createUser("model2@x.test", "operator", testPassword)
	f.createUser("loose@x.test", "operator", testPassword)
	f.serve(f.key)
	f.model2 = f.login("model2@x.test", testPassword, "")
	f.loose = f.login("loose@x.test", testPassword, "")
	return f
}

// post sends a JSON body with optional Idempotency-Key ("" for none).
func (f *execFixture) post(path, token, body, key string) apiResponse {
	f.t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return f.send(http.MethodPost, path, token, body, h)
}

func (f *execFixture) prepare(token, body string) apiResponse {
	f.t.Helper()
	return f.post("/ops/execution/prepare", token, body, "")
}

func (f *execFixture) binanceTest(token, body, key string) apiResponse {
	f.t.Helper()
	return f.post("/ops/execution/binance/test-order", token, body, key)
}

func (f *execFixture) ibkrTest(token, body, key string) apiResponse {
	f.t.Helper()
	return f.post("/ops/execution/ibkr/test-order", token, body, key)
}

// putSecret stores credentials for the token's user.
func (f *execFixture) putSecret(token, exchange, body string) {
	f.t.Helper()
	f.mustStatus(f.call(http.MethodPut, "/users/exchange-secrets/"+exchange, token, body), http.StatusOK)
}

// putBinanceHMAC registers a fresh HMAC key with the fake and stores it for
// the token's user.
func (f *execFixture) putBinanceHMAC(token string) (apiKey, secret string) {
	apiKey, secret = alnum(64), alnum(64)
	f.binance.AddHMACKey(apiKey, secret)
	f.putSecret(token, "BINANCE", fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, apiKey, secret))
	return apiKey, secret
}

// alnum is a random string of n letters and digits (Binance's key format).
func alnum(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := randomBytes(n)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// ed25519PEM is a fresh Ed25519 key: the public half and the PKCS#8 PEM
// private key Binance's key generator writes.
func ed25519PEM(t *testing.T) (ed25519.PublicKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pub, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

type execEvent struct {
	Type     string
	Stream   string
	Data     map[string]any
	Raw      string
	Metadata string
}

// events reads the stored events whose type starts with prefix, in order,
// straight from the table (no visibility horizon: what is committed).
func (f *execFixture) events(prefix string) []execEvent {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT event_type, stream_id, payload::text, coalesce(metadata::text, '')
		FROM watermill_events WHERE event_type LIKE $1 || '%' ORDER BY "offset"`, prefix)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []execEvent
	for rows.Next() {
		var e execEvent
		if err := rows.Scan(&e.Type, &e.Stream, &e.Raw, &e.Metadata); err != nil {
			f.t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(e.Raw), &e.Data); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *execFixture) mustCode(r apiResponse, status int, code string) apiResponse {
	f.t.Helper()
	if r.status != status || r.code() != code {
		f.t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
	return r
}

// exchangeCode is the error's exchange_code as sent (a JSON number or string).
func (r apiResponse) exchangeCode() any {
	e, _ := r.body["error"].(map[string]any)
	return e["exchange_code"]
}

func (r apiResponse) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// rawPost is a goroutine-safe POST for concurrent requests; the answer is
// checked against api/openapi.yaml.
func rawPost(ctx context.Context, t testing.TB, url, token, body string, header http.Header) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := apispec.Client(t).Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw), err
}

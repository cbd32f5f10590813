package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/internal/fakebinance"
)

// The runbook's execution commands, verbatim (issue #9).
var runbookExecution = []string{
	`curl -s -X POST "$BASE_URL/ops/execution/prepare" -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" --data '{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}'`,
	`curl -s -X POST "$BASE_URL/ops/execution/binance/test-order" -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" --data '{"symbol":"BTCUSDT","side":"BUY","qty":0.01}'`,
	`curl -s -X POST "$BASE_URL/ops/execution/ibkr/test-order" -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" --data '{"symbol":"AAPL","side":"BUY","qty":1}'`,
}

// runbook runs one runbook command with bash and curl and decodes its output.
func runbook(t *testing.T, command, baseURL, token string) map[string]any {
	t.Helper()
	cmd := exec.Command("bash", "-c", command)
	cmd.Env = append(os.Environ(), "BASE_URL="+baseURL, "TOKEN="+token)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	var body map[string]any
	if err := json.Unmarshal(out, &body); err != nil {
		t.Fatalf("%s: %v: %s", command, err, out)
	}
	return body
}

// TestRunbookExecutionCommands: against serve --dev (as make run starts it,
// Binance's testnet replaced by the fake), the runbook's commands work for
// both profile users: the canonical orders are accepted under either
// profile, the Binance test order answers secret_missing until a key is
// stored (--dev stores none) and then succeeds, the IBKR one is simulated.
func TestRunbookExecutionCommands(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	fake := fakebinance.New(fakebinance.Options{T: t})
	d := newDeployment(t)
	d.args = []string{"--dev"}
	d.env = map[string]string{"BINANCE_TESTNET_BASE_URL": fake.URL()}
	d.serve(base64.StdEncoding.EncodeToString(randomBytes(32)))
	passwords := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(\S+@tradeops\.local)\s+(\S+)$`).FindAllStringSubmatch(d.output.String(), -1) {
		passwords[m[1]] = m[2]
	}
	for _, email := range []string{"model2@tradeops.local", "loose@tradeops.local"} {
		token := d.login(email, passwords[email], "")
		prepared := runbook(t, runbookExecution[0], d.base, token)
		profile := strings.TrimSuffix(email, "@tradeops.local")
		if prepared["decision"] != "accepted" || prepared["risk_profile"] != profile {
			t.Fatalf("%s prepare: %v", email, prepared)
		}
		missing := runbook(t, runbookExecution[1], d.base, token)
		if e, _ := missing["error"].(map[string]any); e["code"] != "secret_missing" {
			t.Fatalf("%s binance test order without a key: %v", email, missing)
		}
		ibkr := runbook(t, runbookExecution[2], d.base, token)
		if ibkr["status"] != "success" || ibkr["mode"] != "simulated" || ibkr["exchange"] != "IBKR" {
			t.Fatalf("%s ibkr test order: %v", email, ibkr)
		}
		key, secret := alnum(64), alnum(64)
		fake.AddHMACKey(key, secret)
		d.mustStatus(d.call(http.MethodPut, "/users/exchange-secrets/BINANCE", token, fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, key, secret)), http.StatusOK)
		if ok := runbook(t, runbookExecution[1], d.base, token); ok["status"] != "success" || ok["mode"] != "testnet" || ok["validated"] != true {
			t.Fatalf("%s binance test order: %v", email, ok)
		}
	}
	if n := fake.AcceptedTestOrders(); n != 2 {
		t.Fatalf("%d test orders accepted, want 2", n)
	}
}

// TestExecutionNeverLeaksTheSecret: a canary API key and secret, used for
// successful and failed test orders, appear in no log line, event (payload
// or metadata), audit_log row or response body.
func TestExecutionNeverLeaksTheSecret(t *testing.T) {
	f := newExecFixture(t, fixtureOpts{})
	const canarySecret = "CANARYsecretCANARYsecretCANARYsecretCANARYsecretCANARYsecret1234"
	canaryKey := "CANARYkey" + alnum(55)
	f.binance.AddHMACKey(canaryKey, canarySecret)
	f.putSecret(f.model2, "BINANCE", fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, canaryKey, canarySecret))
	f.mustStatus(f.binanceTest(f.model2, btcOrder, "c1"), http.StatusOK)
	f.mustStatus(f.binanceTest(f.model2, btcOrder, "c1"), http.StatusOK)
	f.binance.SetFault(http.StatusInternalServerError, 0)
	f.mustCode(f.binanceTest(f.model2, btcOrder, ""), http.StatusBadGateway, "binance_unknown")
	f.binance.ClearFault()
	f.binance.SetClockOffset(time.Minute)
	f.mustStatus(f.binanceTest(f.model2, btcOrder, ""), http.StatusOK) // -1021, sync, retry
	f.mustStatus(f.prepare(f.model2, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`), http.StatusOK)
	// A wrong secret under the canary key: Binance answers -1022.
	f.putSecret(f.model2, "BINANCE", fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, canaryKey, canarySecret+"x"))
	f.mustCode(f.binanceTest(f.model2, btcOrder, ""), http.StatusBadGateway, "binance_rejected")

	// Wait for the audit log to project every event.
	waitVisible(t, f.pool)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var events, audited int
		if err := f.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM watermill_events), (SELECT count(*) FROM audit_log)`).Scan(&events, &audited); err != nil {
			t.Fatal(err)
		}
		if events == audited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit_log has %d of %d events", audited, events)
		}
	}
	var stored string
	if err := f.pool.QueryRow(context.Background(), `SELECT string_agg(payload::text || coalesce(metadata::text, ''), ' ') FROM watermill_events`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var audited string
	if err := f.pool.QueryRow(context.Background(), `SELECT string_agg(data::text, ' ') FROM audit_log`).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(audited, `"exchange_code": "-1022"`) || !strings.Contains(audited, `"outcome": "unknown"`) {
		t.Fatalf("the failures were not recorded: %s", audited)
	}
	f.mu.Lock()
	bodies := strings.Join(f.bodies, "\n")
	f.mu.Unlock()
	for what, text := range map[string]string{"logs": f.output.String(), "events": stored, "audit_log": audited, "responses": bodies} {
		for _, canary := range []string{canarySecret, canaryKey, "CANARYsecret"} {
			if strings.Contains(text, canary) {
				t.Errorf("%s contain %q", what, canary)
			}
		}
	}
}

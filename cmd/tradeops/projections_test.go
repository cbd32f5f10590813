package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/internal/apispec"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
)

// cli runs a tradeops command against dbURL and returns stdout, stderr and
// the exit code.
func cli(t *testing.T, dbURL string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"tradeops"}, args...), envOf(map[string]string{"DATABASE_URL": dbURL}),
		strings.NewReader(""), &out, &errOut)
	if err != nil {
		fmt.Fprintln(&errOut, err)
	}
	return out.String(), errOut.String(), exitCode(err)
}

// seedEvents generates n events and waits until readers see them.
func seedEvents(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eventgen.Insert(ctx, pool, n, 500, 10); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, pool)
}

// waitVisible waits until readers see every stored event: the xmin horizon
// is server-wide, so another package's open transaction can hide them.
func waitVisible(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := eventgen.WaitVisible(ctx, pool); err != nil {
		t.Fatal(err)
	}
}

func TestProjectionsCLI(t *testing.T) {
	pool, url := testdb.New(t)
	seedEvents(t, pool, 3000)

	out, _, code := cli(t, url, "projections", "status")
	if code != 0 || !strings.Contains(out, "audit_log") || !strings.Contains(out, "not started") {
		t.Fatalf("status before any run: %d\n%s", code, out)
	}
	out, errOut, code := cli(t, url, "projections", "rebuild", "--all", "--batch", "500")
	if code != 0 || !strings.Contains(out, "audit_log: rebuilt 3000 events") || strings.Contains(out, "audit_seal") {
		t.Fatalf("rebuild --all: %d\n%s\n%s", code, out, errOut)
	}
	// Not a terminal: plain progress lines with the rate and an ETA.
	if !regexp.MustCompile(`rebuild audit_log: copy \d+/3000 events \(.*%\), \d+ events/s, ETA`).MatchString(errOut) {
		t.Fatalf("progress lines: %s", errOut)
	}
	out, _, _ = cli(t, url, "projections", "status")
	if !regexp.MustCompile(`audit_log\s+2\s+\d+:\d+\s+0\s+0\.0\s+live\s+0`).MatchString(out) {
		t.Fatalf("status after the rebuild:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"projections", "rebuild", "audit_seal"}, 1, "--reseal"},
		{[]string{"projections", "rebuild", "nope"}, 2, "unknown projection"},
		{[]string{"projections", "rebuild"}, 2, "usage"},
		{[]string{"projections", "rebuild", "audit_log", "--all"}, 2, "usage"},
		{[]string{"projections", "rebuild", "audit_log", "--reseal"}, 2, "audit_seal only"},
		{[]string{"projections", "frobnicate"}, 2, "usage"},
		{[]string{"audit", "verify", "--against", "/nonexistent"}, 2, "--against"},
	} {
		_, errOut, code := cli(t, url, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q: %s", tc.args, code, tc.code, tc.want, errOut)
		}
	}
}

func TestAuditCLI(t *testing.T) {
	pool, url := testdb.New(t)
	seedEvents(t, pool, 2000)
	out, errOut, code := cli(t, url, "projections", "rebuild", "audit_seal", "--reseal")
	if code != 0 || !strings.Contains(out, "audit_seal: rebuilt ") {
		t.Fatalf("reseal of a fresh stream: %d %s %s", code, out, errOut)
	}
	head, _, code := cli(t, url, "audit", "head")
	var h struct {
		Position, EventID, Hash string
		Count                   int
	}
	// 2000 events, and the re-seal's own event unless another transaction
	// on the server still hid it when the rebuild swapped.
	if err := json.Unmarshal([]byte(head), &h); err != nil || code != 0 || h.Count < 2000 || len(h.Hash) != 64 {
		t.Fatalf("audit head: %s %v", head, err)
	}
	headFile := filepath.Join(t.TempDir(), "head.json")
	if err := os.WriteFile(headFile, []byte(head), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code = cli(t, url, "audit", "verify", "--against", headFile)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("audit seal OK: %d events verified, exported head %s", h.Count, h.Position)) {
		t.Fatalf("verify: %d %s", code, out)
	}

	var xid, offset string
	if err := pool.QueryRow(context.Background(), `SELECT transaction_id::text AS x, "offset"::text AS o FROM watermill_events
		ORDER BY transaction_id, "offset" OFFSET 1500 LIMIT 1`).Scan(&xid, &offset); err != nil {
		t.Fatal(err)
	}
	// Flip one bit: the case of the first letter of the payload's first key.
	if _, err := pool.Exec(context.Background(), `UPDATE watermill_events
		SET payload = overlay(payload::text PLACING upper(substr(payload::text, 3, 1)) FROM 3 FOR 1)::json
		WHERE transaction_id = $1::text::xid8 AND "offset" = $2::text::bigint`, xid, offset); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = cli(t, url, "audit", "verify")
	if code != 1 || !strings.Contains(out, "altered at position "+xid+":"+offset) {
		t.Fatalf("verify after tampering: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := cli(t, url, "projections", "rebuild", "audit_seal", "--reseal"); code != 1 || !strings.Contains(errOut, "refusing to re-seal") {
		t.Fatalf("reseal of a tampered stream: exit %d %s", code, errOut)
	}
}

// The runbook's check, end to end through serve: log in, then the login is
// in /ops/audit/me — and with --projections=off serve leaves it to a worker.
func TestServeProjectsTheAuditLog(t *testing.T) {
	_, dbURL := testdb.New(t)
	if _, err := runCLI(t, dbURL, "correct horse battery\n", "users", "create", "--email", "ops@example.com", "--role", "operator", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	serve := func(ctx context.Context, args ...string) (string, chan error) {
		addr := freeAddr(t)
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, append([]string{"tradeops", "serve"}, args...), envOf(map[string]string{
				"DATABASE_URL": dbURL, "LISTEN_ADDR": addr, "SECRET_KEY": string(testSecretKey),
				"ENCRYPTION_KEY": testEncryptionKey, "LOG_LEVEL": "error",
			}), nil, io.Discard, io.Discard)
		}()
		base := "http://" + addr
		waitStatus(t, base+"/healthz", http.StatusOK, `"ok"`) // ready: the API is open
		return base, done
	}
	client := apispec.Client(t)
	audit := func(base string, wait time.Duration) []string {
		resp, err := client.PostForm(base+"/auth/login", url.Values{"username": {"ops@example.com"}, "password": {"correct horse battery"}})
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		req, _ := http.NewRequest(http.MethodGet, base+"/ops/audit/me?limit=100", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		var types []string
		for deadline := time.Now().Add(wait); time.Now().Before(deadline) && len(types) == 0; time.Sleep(20 * time.Millisecond) {
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var page struct{ Events []struct{ Type string } }
			_ = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/ops/audit/me: %d", resp.StatusCode)
			}
			for _, e := range page.Events {
				types = append(types, e.Type)
			}
		}
		return types
	}

	ctx, stop := context.WithCancel(context.Background())
	base, done := serve(ctx, "--projections=off")
	if types := audit(base, 300*time.Millisecond); len(types) != 0 {
		t.Fatalf("--projections=off projected %v", types)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	base, done = serve(ctx)
	if types := audit(base, 30*time.Second); len(types) == 0 || types[0] != "auth.login.success" {
		t.Fatalf("/ops/audit/me after a login: %v", types)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWorkerRunsTheProjections(t *testing.T) {
	pool, dbURL := testdb.New(t)
	seedEvents(t, pool, 1500)
	addr, stop := startWorker(t, map[string]string{"DATABASE_URL": dbURL})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var sealed, logged int
		_ = pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM audit_seal), (SELECT count(*) FROM audit_log)`).Scan(&sealed, &logged)
		if sealed == 1500 && logged == 1500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker projected %d/%d events", logged, sealed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitMetrics(t, addr, deadline, `tradeops_projection_lag_events{projection="audit_log"} 0`)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := cli(t, dbURL, "serve", "--projections=maybe"); code != 2 || !strings.Contains(errOut, "on or off") {
		t.Fatalf("serve --projections=maybe: %d %s", code, errOut)
	}
}

func TestEventsReplayVerify(t *testing.T) {
	pool, url := testdb.New(t)
	seedEvents(t, pool, 1000)
	if _, errOut, code := cli(t, url, "projections", "rebuild", "audit_seal", "--reseal"); code != 0 {
		t.Fatal(errOut)
	}
	out, errOut, code := cli(t, url, "events", "replay", "--verify")
	if code != 0 || strings.Count(out, "\n") < 1000 || !strings.Contains(errOut, "audit seal OK: ") {
		t.Fatalf("intact: exit %d, %d lines\n%s", code, strings.Count(out, "\n"), errOut)
	}
	var xid, offset string
	if err := pool.QueryRow(context.Background(), `SELECT transaction_id::text AS x, "offset"::text AS o FROM watermill_events
		ORDER BY transaction_id, "offset" OFFSET 600 LIMIT 1`).Scan(&xid, &offset); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), `DELETE FROM watermill_events WHERE transaction_id = $1::text::xid8 AND "offset" = $2::text::bigint`, xid, offset); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = cli(t, url, "events", "replay", "--verify")
	if code != 1 || strings.Count(out, "\n") != 600 || !strings.Contains(errOut, "deleted at position "+xid+":"+offset) {
		t.Fatalf("a deleted event: exit %d, %d lines\n%s", code, strings.Count(out, "\n"), errOut)
	}
	// A filtered replay checks the whole chain all the same.
	out, errOut, code = cli(t, url, "events", "replay", "--verify", "--type", "auth.", "--limit", "3")
	if code != 1 || strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "deleted at position "+xid+":"+offset) {
		t.Fatalf("filtered: exit %d, %d lines\n%s", code, strings.Count(out, "\n"), errOut)
	}
}

// waitMetrics polls the Prometheus text at addr until it holds every one
// of want, failing the test (with the last text) at deadline.
func waitMetrics(t *testing.T, addr string, deadline time.Time, want ...string) {
	t.Helper()
	for metrics := ""; ; time.Sleep(50 * time.Millisecond) {
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(metrics, w) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics at %s never showed %q:\n%s", addr, want, metrics)
		}
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
		}
	}
}

// startWorker runs `tradeops worker` with env and its metrics on a free
// address, until stop, which returns run's error.
func startWorker(t *testing.T, env map[string]string) (addr string, stop func() error) {
	t.Helper()
	addr = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"tradeops", "worker", "--metrics-addr", addr}, envOf(env), nil, io.Discard, io.Discard)
	}()
	return addr, func() error {
		cancel()
		return <-done
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/internal/apispec"
	"github.com/tradeops/tradeops/internal/testdb"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func envOf(m map[string]string) env { return func(k string) string { return m[k] } }

// testEncryptionKey is a valid ENCRYPTION_KEY for tests that start serve.
const testEncryptionKey = "a+5zhwa8eJPV+wzAtjMknS6h2KBGERZrDAcxKjVie3E="

func TestServeRejectsMalformedDatabaseURL(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"tradeops", "serve"}, envOf(map[string]string{
		"DATABASE_URL":   "postgres://admin:canary-Pa55word@db.example:notaport/x",
		"SECRET_KEY":     string(testSecretKey),
		"ENCRYPTION_KEY": testEncryptionKey,
	}), nil, &out, &errOut)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("want exit code 2, got %v", err)
	}
	all := err.Error() + out.String() + errOut.String()
	if !strings.Contains(err.Error(), "DATABASE_URL") || strings.Contains(all, "canary-Pa55word") {
		t.Fatalf("message must name DATABASE_URL and never the password: %q", all)
	}
}

func TestServeRefusesMissingOrWeakSecrets(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/x"}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"missing secret":    {map[string]string{}, "SECRET_KEY"},
		"weak secret":       {map[string]string{"SECRET_KEY": "short-canary"}, "SECRET_KEY"},
		"bad key":           {map[string]string{"SECRET_KEY": string(testSecretKey), "ENCRYPTION_KEY": "c2hvcnQtY2FuYXJ5"}, "ENCRYPTION_KEY"},
		"patterned secret":  {map[string]string{"SECRET_KEY": strings.Repeat("canary", 6)}, "SECRET_KEY"},
		"zero key":          {map[string]string{"SECRET_KEY": string(testSecretKey), "ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "ENCRYPTION_KEY"},
		"repeated-byte key": {map[string]string{"SECRET_KEY": string(testSecretKey), "ENCRYPTION_KEY": base64.StdEncoding.EncodeToString([]byte(strings.Repeat("A", 32)))}, "ENCRYPTION_KEY"},
		"proxy flag typo":   {map[string]string{"TRUST_PROXY_HEADERS": "yes"}, "TRUST_PROXY_HEADERS"},
		"bad proxy list":    {map[string]string{"TRUST_PROXY_HEADERS": "true", "TRUSTED_PROXIES": "10.0.0.0/8, lb.internal"}, "TRUSTED_PROXIES"},
	} {
		t.Run(name, func(t *testing.T) {
			e := map[string]string{}
			for k, v := range base {
				e[k] = v
			}
			for k, v := range tc.env {
				e[k] = v
			}
			var out bytes.Buffer
			err := run(context.Background(), []string{"tradeops", "serve"}, envOf(e), nil, &out, &out)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want exit 2 naming %s, got %v", tc.want, err)
			}
			if strings.Contains(err.Error()+out.String(), "canary") {
				t.Fatalf("secret value leaked: %v", err)
			}
		})
	}
}

// TestServeSurvivesDatabaseOutage starts serve while the database is
// unreachable (through a proxy the test owns), then brings it back, cuts it
// again and restores it: /healthz follows without a restart.
func TestServeSurvivesDatabaseOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url, drop := testdb.Create(ctx, t)
	t.Cleanup(drop)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testdb.NewProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	proxy.Cut()
	proxied := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, proxy.Addr(), cfg.Database)

	addr := freeAddr(t)
	logs := &syncBuffer{}
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(serveCtx, []string{"tradeops", "serve", "--dev"}, envOf(map[string]string{
			"DATABASE_URL": proxied, "LISTEN_ADDR": addr,
		}), nil, logs, io.Discard)
	}()
	base := "http://" + addr

	waitStatus(t, base+"/healthz", http.StatusServiceUnavailable, `"degraded"`)
	if code := get(t, base+"/users/me"); code != http.StatusServiceUnavailable {
		t.Fatalf("API before the database is ready: got %d, want 503", code)
	}
	proxy.Restore()
	waitStatus(t, base+"/healthz", http.StatusOK, `"ok"`)
	waitStatus(t, base+"/no-such-route", http.StatusNotFound, `"not_found"`)
	proxy.Cut()
	waitStatus(t, base+"/healthz", http.StatusServiceUnavailable, `"degraded"`)
	proxy.Restore()
	waitStatus(t, base+"/healthz", http.StatusOK, `"ok"`)

	resp, err := apispec.Client(t).Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"tradeops_http_request_duration_seconds_bucket", "tradeops_db_pool_conns_total", `route="/healthz"`} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}
	// Every stdout line is a JSON log line and request lines carry the
	// request id (the dev banner goes to stderr).
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "request" && m["request_id"] == nil {
			t.Fatalf("request log line without request_id: %q", line)
		}
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := apispec.Client(t).Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitStatus(t *testing.T, url string, status int, bodyContains string) {
	t.Helper()
	client := apispec.Client(t) // every answer on the way, too, matches api/openapi.yaml
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b.String())
			if resp.StatusCode == status && strings.Contains(b.String(), bodyContains) {
				if resp.Header.Get("X-Request-ID") == "" {
					t.Fatalf("%s: no X-Request-ID header", url)
				}
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: want %d with %s, last got %s", url, status, bodyContains, last)
}

func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		if r.Context().Err() != nil {
			t.Error("in-flight request was cancelled by shutdown")
		}
		_, _ = w.Write([]byte("finished"))
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, handler, slog.New(slog.NewJSONHandler(io.Discard, nil))) }()

	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			body <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body <- string(b)
	}()
	<-started
	stop() // what SIGTERM does through signal.NotifyContext
	if got := <-body; got != "finished" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}

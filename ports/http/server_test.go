package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/domain"
)

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

type echoReq struct {
	Symbol string  `json:"symbol"`
	Qty    float64 `json:"qty"`
}

func newTestServer(t *testing.T, ping pingFunc, edits ...func(*Options)) *httptest.Server {
	t.Helper()
	opts := Options{
		Version: "test", Health: ping, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	for _, edit := range edits {
		edit(&opts)
	}
	h := NewHandler(opts, func(r *mux.Router) {
		r.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
			var req echoReq
			if !DecodeJSON(w, r, &req) {
				return
			}
			WriteJSON(w, http.StatusOK, req)
		}).Methods(http.MethodPost)
		r.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, r, &domain.Error{Kind: domain.KindTooMany, Code: "too_many_attempts", Message: "slow down", RetryAfterSeconds: 7})
		})
		r.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, r, errors.New("db password=canary-secret leaked in a driver error"))
		})
		r.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("canary-panic") })
		r.HandleFunc("/query/{name}", func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, map[string]any{"name": mux.Vars(r)["name"], "query": r.URL.Query()})
		})
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, contentType, body string, hdr ...string) (*http.Response, errorBody) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb errorBody
	_ = json.Unmarshal(raw, &eb)
	if resp.StatusCode >= 400 && (eb.Error.Code == "" || eb.Error.Message == "") {
		t.Fatalf("%s %s: error body not in the API shape: %s", method, url, raw)
	}
	if strings.Contains(string(raw), "canary") {
		t.Fatalf("response leaks internals: %s", raw)
	}
	return resp, eb
}

func TestBadInputGetsJSONErrors(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil })
	const js = "application/json"
	cases := []struct {
		name, ct, body string
		status         int
		code           string
	}{
		{"ok", js, `{"symbol":"BTCUSDT","qty":1}`, 200, ""},
		{"malformed", js, `{"symbol":`, 400, "malformed_json"},
		{"unknown field", js, `{"symbol":"X","sneaky":1}`, 400, "unknown_field"},
		{"wrong type", js, `{"qty":"ten"}`, 400, "invalid_field"},
		{"two objects", js, `{"qty":1}{"qty":2}`, 400, "malformed_json"},
		{"empty", js, ``, 400, "malformed_json"},
		{"wrong content type", "text/plain", `{"qty":1}`, 415, "unsupported_media_type"},
		{"too large", js, `{"symbol":"` + strings.Repeat("A", MaxBodyBytes) + `"}`, 413, "body_too_large"},
		{"too large and not JSON", js, strings.Repeat("a", MaxBodyBytes+1), 413, "body_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, eb := do(t, http.MethodPost, srv.URL+"/echo", c.ct, c.body)
			if resp.StatusCode != c.status || eb.Error.Code != c.code {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, eb.Error.Code, c.status, c.code)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestErrorsAreClassifiedAndNeverLeak(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil })
	resp, eb := do(t, http.MethodGet, srv.URL+"/fail", "", "")
	if resp.StatusCode != 429 || eb.Error.Code != "too_many_attempts" || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("got %d %+v Retry-After=%q", resp.StatusCode, eb, resp.Header.Get("Retry-After"))
	}
	resp, eb = do(t, http.MethodGet, srv.URL+"/boom", "", "")
	if resp.StatusCode != 500 || eb.Error.Code != "internal" {
		t.Fatalf("got %d %+v", resp.StatusCode, eb)
	}
	resp, eb = do(t, http.MethodGet, srv.URL+"/panic", "", "")
	if resp.StatusCode != 500 || eb.Error.Code != "internal" {
		t.Fatalf("got %d %+v", resp.StatusCode, eb)
	}
	resp, eb = do(t, http.MethodGet, srv.URL+"/nowhere", "", "")
	if resp.StatusCode != 404 || eb.Error.Code != "not_found" {
		t.Fatalf("got %d %+v", resp.StatusCode, eb)
	}
	resp, eb = do(t, http.MethodGet, srv.URL+"/echo", "", "")
	if resp.StatusCode != 405 || eb.Error.Code != "method_not_allowed" {
		t.Fatalf("got %d %+v", resp.StatusCode, eb)
	}
}

func TestRequestIDOnEveryResponse(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil })
	resp, _ := do(t, http.MethodGet, srv.URL+"/healthz", "", "", "X-Request-ID", "abc-123")
	if got := resp.Header.Get("X-Request-ID"); got != "abc-123" {
		t.Fatalf("caller's request id not echoed: %q", got)
	}
	resp, _ = do(t, http.MethodGet, srv.URL+"/nowhere", "", "", "X-Request-ID", "bad id\twith spaces")
	if got := resp.Header.Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " \t") {
		t.Fatalf("unsafe request id kept or none generated: %q", got)
	}
}

func TestHealthz(t *testing.T) {
	var down bool
	srv := newTestServer(t, func(context.Context) error {
		if down {
			return errors.New("connection refused")
		}
		return nil
	})
	for _, want := range []struct {
		down   bool
		status int
		body   string
	}{{false, 200, "ok"}, {true, 503, "degraded"}, {false, 200, "ok"}} {
		down = want.down
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var h healthResponse
		_ = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if resp.StatusCode != want.status || h.Status != want.body || h.Version != "test" {
			t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, h, want.status, want.body)
		}
		if ra := resp.Header.Get("Retry-After"); (want.status == 503) != (ra == "1") {
			t.Fatalf("status %d with Retry-After %q", resp.StatusCode, ra)
		}
	}
}

func TestMetricsLabelByRouteTemplate(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil })
	do(t, http.MethodPost, srv.URL+"/echo", "application/json", `{"qty":1}`)
	do(t, http.MethodGet, srv.URL+"/nowhere/42", "", "")
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tradeops_http_request_duration_seconds_count{method="POST",route="/echo",status="200"} 1`,
		`tradeops_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(b), "/nowhere/42") {
		t.Error("a raw path became a label")
	}
}

package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/api"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/apispec"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

// TestEveryRouteIsDescribed walks the router serve builds: every method and
// path it serves is described in api/openapi.yaml (an endpoint added
// without its description fails here), and every described operation is
// served. GET /openapi.yaml serves the embedded document, byte for byte.
func TestEveryRouteIsDescribed(t *testing.T) {
	h := newHarness(t, domain.DefaultThrottlePolicy, envOf(nil), false)
	store := eventstore.New(h.pool)
	keys, err := newKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	execution, err := newExecution(exchangesConfig{BinanceURL: defaultBinanceTestnet}, store, keys, h.id.auth, systemClock{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	features := apiRoutes(store, h.id, newVault(h.pool, store, keys, h.id.auth, slog.New(slog.DiscardHandler)), execution)
	routes, err := porthttp.Routes(features...)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := apispec.Document()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range routes {
		served[r.Method+" "+r.Path] = true
		if item := doc.Paths.Value(r.Path); item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("%s %s is served but not described in api/openapi.yaml", r.Method, r.Path)
		}
	}
	if len(routes) < 15 {
		t.Fatalf("the walk found only %d routes: %v", len(routes), routes)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if op := method + " " + path; !served[op] {
				t.Errorf("%s is described in api/openapi.yaml but not served", op)
			}
		}
	}

	srv := httptest.NewServer(porthttp.NewHandler(porthttp.Options{
		Version: "test", Health: h.pool, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
	}, features...))
	t.Cleanup(srv.Close)
	resp, err := apispec.Client(t).Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != string(api.OpenAPI) {
		t.Fatalf("GET /openapi.yaml: %d, %d bytes, want the embedded %d", resp.StatusCode, len(body), len(api.OpenAPI))
	}
}

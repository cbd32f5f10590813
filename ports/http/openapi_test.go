package http

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

// The description is public and served byte for byte, as YAML.
func TestAPIDescriptionIsServedAsIs(t *testing.T) {
	doc := []byte("openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths: {}\n")
	srv := httptest.NewServer(NewHandler(Options{
		Version: "test", Health: pingFunc(func(context.Context) error { return nil }), Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}, APIDescriptionRoutes(doc)))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" || string(got) != string(doc) {
		t.Fatalf("GET /openapi.yaml: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	if resp, _ := do(t, http.MethodPost, srv.URL+"/openapi.yaml", "", ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /openapi.yaml: %d", resp.StatusCode)
	}
}

// Routes lists what NewHandler serves: its own routes and the features',
// one entry per method, "*" for a route that takes any.
func TestRoutesListsEveryMethodAndPath(t *testing.T) {
	noop := func(http.ResponseWriter, *http.Request) {}
	routes, err := Routes(APIDescriptionRoutes(nil), func(r *mux.Router) {
		r.HandleFunc("/any", noop)
		r.HandleFunc("/things/{id}", noop).Methods(http.MethodPut, http.MethodDelete)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{{"GET", "/healthz"}, {"GET", "/metrics"}, {"GET", "/openapi.yaml"}, {"*", "/any"}, {"PUT", "/things/{id}"}, {"DELETE", "/things/{id}"}}
	if !slices.Equal(routes, want) {
		t.Fatalf("routes %v, want %v", routes, want)
	}
}

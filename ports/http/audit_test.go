package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
	porthttp "github.com/tradeops/tradeops/ports/http"
	"github.com/tradeops/tradeops/projections"
)

// The auth middleware is another feature's; these stand-ins take the caller
// from test headers.
func fakeRequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Test-User")
		if id == "" {
			porthttp.WriteError(w, r, domain.Errorf(domain.KindUnauthorized, "unauthorized", "no user"))
			return
		}
		c := app.CallerFrom(r.Context())
		c.UserID, c.Email, c.Role = id, id+"@example.com", domain.Role(r.Header.Get("X-Test-Role"))
		next.ServeHTTP(w, r.WithContext(app.WithCaller(r.Context(), c)))
	})
}

func fakeRequireAdmin(next http.Handler) http.Handler {
	return fakeRequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if app.CallerFrom(r.Context()).Role != domain.RoleAdmin {
			porthttp.WriteError(w, r, domain.Errorf(domain.KindForbidden, "forbidden", "admins only"))
			return
		}
		next.ServeHTTP(w, r)
	}))
}

type auditResponse struct {
	Events []struct {
		ID     string `json:"id"`
		Type   string `json:"type"`
		At     time.Time
		Stream string `json:"stream"`
		Actor  *struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"actor"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
	NextCursor *string `json:"next_cursor"`
	Error      *struct{ Code string }
}

type auditServer struct {
	*httptest.Server
	t *testing.T
}

func (s auditServer) get(path, user string, role domain.Role) (int, auditResponse, string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if user != "" {
		req.Header.Set("X-Test-User", user)
		req.Header.Set("X-Test-Role", string(role))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out auditResponse
	if err := json.Unmarshal(body, &out); err != nil {
		s.t.Fatalf("%s: %s", path, body)
	}
	return resp.StatusCode, out, string(body)
}

// newAuditServer serves the audit routes over a database where alice, bob
// and the system have each appended events, projected into audit_log.
func newAuditServer(t *testing.T) auditServer {
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	add := func(actor, typ string, data string) { appendAs(t, store, "user-"+actor, actor, typ, data) }
	for range 7 {
		add("alice", "execution.prepare", `{"symbol":"BTCUSDT"}`)
		add("bob", "execution.prepare", `{"symbol":"ETHUSDT","note":"bob-only"}`)
	}
	add("alice", "secrets.exchange.configured", `{"exchange":"BINANCE","api_key":"canary-key","api_secret":"canary-secret","api_key_hint":"****abcd"}`)
	add("alice", "auth.login.success", `{"method":"password","password":"canary-password","otp":"123456"}`)
	add("", "security.key_rotation.prune", `{"kept":"k1"}`)
	// Project everything: a rebuild is the quickest way there.
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := eventgen.WaitVisible(waitCtx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := projections.Rebuild(ctx, pool, store, projections.AuditLog{}, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	return serveAudit(t, pool)
}

// appendAs appends one event to stream as actor (<actor>@example.com).
func appendAs(t *testing.T, store *eventstore.Store, stream, actor, typ, data string) {
	t.Helper()
	md := eventstore.Metadata{ActorID: actor}
	if actor != "" {
		md.ActorEmail = actor + "@example.com"
	}
	if _, err := store.Append(context.Background(), stream, eventstore.Any, md,
		eventstore.NewEvent{Type: typ, SchemaVersion: 1, Data: json.RawMessage(data)}); err != nil {
		t.Fatal(err)
	}
}

// serveAudit serves the audit routes over the audit_log in pool.
func serveAudit(t *testing.T, pool *pgxpool.Pool) auditServer {
	reader := projections.NewAuditLogReader(pool)
	h := porthttp.NewHandler(porthttp.Options{Version: "test", Health: pool, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))},
		porthttp.AuditRoutes(porthttp.AuditQueries{Mine: app.NewListMyAuditHandler(reader), All: app.NewListAuditHandler(reader, usersByEmail{})},
			mux.MiddlewareFunc(fakeRequireUser), mux.MiddlewareFunc(fakeRequireAdmin)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return auditServer{srv, t}
}

func TestMyAuditShowsOnlyTheCallersEvents(t *testing.T) {
	s := newAuditServer(t)
	status, page, body := s.get("/ops/audit/me", "alice", domain.RoleOperator)
	if status != http.StatusOK || len(page.Events) != 9 || page.NextCursor != nil {
		t.Fatalf("%d %s", status, body)
	}
	for i, e := range page.Events {
		if e.Actor == nil || e.Actor.ID != "alice" || e.Actor.Email != "alice@example.com" || strings.Contains(string(e.Data), "bob") {
			t.Fatalf("alice sees event %d of someone else: %s", i, body)
		}
		if i > 0 && e.At.After(page.Events[i-1].At) {
			t.Fatalf("not newest first: %s", body)
		}
	}
	if page.Events[0].Type != "auth.login.success" || page.Events[0].Stream != "user-alice" {
		t.Fatalf("newest: %+v", page.Events[0])
	}
	if strings.Contains(body, "canary") || strings.Contains(body, "123456") {
		t.Fatalf("a secret reached the audit API: %s", body)
	}
	// since= bounds the caller's trail too (the console's date filter).
	since, want := page.Events[3].At, 0
	for _, e := range page.Events {
		if !e.At.Before(since) {
			want++
		}
	}
	if _, p, body := s.get("/ops/audit/me?since="+url.QueryEscape(since.Format(time.RFC3339Nano)), "alice", domain.RoleOperator); len(p.Events) != want || want < 4 {
		t.Fatalf("since %s: %d events, want %d: %s", since, len(p.Events), want, body)
	}
	// An admin's own trail is just as personal.
	if _, page, _ := s.get("/ops/audit/me", "bob", domain.RoleAdmin); len(page.Events) != 7 {
		t.Fatalf("bob sees %d events", len(page.Events))
	}
	// A query string cannot widen it.
	if _, page, _ := s.get("/ops/audit/me?user=bob&actor=bob", "alice", domain.RoleOperator); len(page.Events) != 9 || page.Events[0].Actor.ID != "alice" {
		t.Fatal("the query string changed whose events are shown")
	}
	if status, page, _ := s.get("/ops/audit/me", "", ""); status != http.StatusUnauthorized || page.Error == nil {
		t.Fatalf("anonymous: %d", status)
	}
}

func TestAuditPagesWithTheCursor(t *testing.T) {
	s := newAuditServer(t)
	seen := map[string]bool{}
	path := "/ops/audit/me?limit=2&type=execution.prepare"
	pages := 0
	for ; pages < 10; pages++ {
		status, page, body := s.get(path, "alice", domain.RoleOperator)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		for _, e := range page.Events {
			if seen[e.ID] || e.Type != "execution.prepare" {
				t.Fatalf("page %d: %s", pages, body)
			}
			seen[e.ID] = true
		}
		if page.NextCursor == nil {
			break
		}
		path = "/ops/audit/me?limit=2&type=execution.prepare&before=" + url.QueryEscape(*page.NextCursor)
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("%d events in %d pages", len(seen), pages+1)
	}
}

func TestAuditRejectsBadLimitsAndCursors(t *testing.T) {
	s := newAuditServer(t)
	for q, code := range map[string]string{
		"limit=0": "invalid_limit", "limit=1001": "invalid_limit", "limit=-5": "invalid_limit", "limit=ten": "invalid_limit",
		"limit=1.5": "invalid_limit", "before=garbage": "invalid_cursor", "before=YTE6MTI": "invalid_cursor",
	} {
		status, page, body := s.get("/ops/audit/me?"+q, "alice", domain.RoleOperator)
		if status != http.StatusBadRequest || page.Error == nil || page.Error.Code != code {
			t.Errorf("%s: %d %s", q, status, body)
		}
	}
	for _, q := range []string{"limit=1", "limit=1000", ""} {
		if status, _, body := s.get("/ops/audit/me?"+q, "alice", domain.RoleOperator); status != http.StatusOK {
			t.Errorf("%s: %d %s", q, status, body)
		}
	}
	for _, path := range []string{"/ops/audit?since=yesterday", "/ops/audit/me?since=2026-13-01T00:00:00Z"} {
		if status, _, body := s.get(path, "root", domain.RoleAdmin); status != http.StatusBadRequest || !strings.Contains(body, "invalid_since") {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
}

func TestAdminAuditSeesEveryoneAndFilters(t *testing.T) {
	s := newAuditServer(t)
	if status, _, _ := s.get("/ops/audit", "alice", domain.RoleOperator); status != http.StatusForbidden {
		t.Fatalf("operator: %d", status)
	}
	_, all, body := s.get("/ops/audit", "root", domain.RoleAdmin)
	if len(all.Events) != 17 || all.Events[0].Actor != nil || all.Events[0].Type != "security.key_rotation.prune" {
		t.Fatalf("all: %s", body)
	}
	for user, want := range map[string]int{"bob": 7, "BOB@example.com": 7, "alice@example.com": 9, "nobody": 0} {
		_, page, body := s.get("/ops/audit?user="+url.QueryEscape(user), "root", domain.RoleAdmin)
		if len(page.Events) != want {
			t.Errorf("user=%s: %d events, want %d: %s", user, len(page.Events), want, body)
		}
	}
	_, page, _ := s.get("/ops/audit?type=auth.login.success&limit=5", "root", domain.RoleAdmin)
	if len(page.Events) != 1 {
		t.Fatalf("type filter: %d", len(page.Events))
	}
	since := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	if _, page, _ := s.get("/ops/audit?since="+since, "root", domain.RoleAdmin); len(page.Events) != 0 {
		t.Fatalf("since the future: %d events", len(page.Events))
	}
}

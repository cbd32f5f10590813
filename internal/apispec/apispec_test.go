package apispec

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The document loads and passes kin-openapi's validation of OpenAPI 3.0.
func TestDocumentIsValid(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" || doc.Components.SecuritySchemes["bearerAuth"] == nil {
		t.Fatalf("openapi %q, security schemes %v", doc.OpenAPI, doc.Components.SecuritySchemes)
	}
}

// The statuses every endpoint shares (ports/http) are declared on every
// operation, so that a new operation cannot forget one: the input checks
// before routing (400), the body limit (413), the generic 500; 503 with
// Retry-After behind the readiness gate (all but /healthz and /metrics);
// 401 with WWW-Authenticate where a token is required, 403 on admin
// operations, 415 where a body is taken, Retry-After on every 429; and
// every error is in one of the two error shapes.
func TestEveryOperationDeclaresTheSharedStatuses(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	errorShapes := []string{"#/components/schemas/Error", "#/components/schemas/AnyError", "#/components/schemas/TestOrderError"}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			want := []string{"400", "413", "500"}
			if path != "/healthz" && path != "/metrics" {
				want = append(want, "503")
			}
			secured := doc.Security
			if op.Security != nil {
				secured = *op.Security
			}
			if len(secured) > 0 {
				want = append(want, "401")
			}
			if slices.Contains(op.Tags, "admin") {
				want = append(want, "403")
			}
			if op.RequestBody != nil {
				want = append(want, "415")
			}
			for _, status := range want {
				if op.Responses.Value(status) == nil {
					t.Errorf("%s: no %s response", name, status)
				}
			}
			for status, r := range op.Responses.Map() {
				hasHeader := func(h string) bool {
					hr := r.Value.Headers[h]
					return hr != nil && hr.Value.Required
				}
				switch {
				case status == "401" && len(secured) > 0 && !hasHeader("WWW-Authenticate"):
					t.Errorf("%s: 401 without a required WWW-Authenticate", name)
				case (status == "429" || (status == "503" && path != "/healthz")) && !hasHeader("Retry-After"):
					t.Errorf("%s: %s without a required Retry-After", name, status)
				}
				if status[0] != '4' && status[0] != '5' || name == "GET /healthz" {
					continue
				}
				mt := r.Value.Content.Get("application/json")
				if mt == nil || !slices.Contains(errorShapes, mt.Schema.Ref) {
					t.Errorf("%s: the %s response is not in an error shape", name, status)
				}
			}
		}
	}
}

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// The validating transport passes what matches the description and reports
// each kind of drift; the caller reads the body afterwards as sent.
func TestValidatingTransport(t *testing.T) {
	const (
		me       = `{"id":"3a43937b-d972-4c70-b14c-a980007fbb76","email":"op@example.com","role":"operator","risk_profile":"model2","totp_enabled":false}`
		errJSON  = `{"error":{"code":"%s","message":"m"}}`
		jsonType = "application/json"
	)
	type answer struct {
		status int
		header map[string]string
		body   string
	}
	var (
		mu   sync.Mutex
		next answer
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		a := next
		mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	ct := map[string]string{"Content-Type": jsonType}
	with := func(k, v string) map[string]string { return map[string]string{"Content-Type": jsonType, k: v} }
	for _, c := range []struct {
		name, method, path string
		answer
		drift string // what the report must say; "" when the answer matches
	}{
		{"matching body", "GET", "/users/me", answer{200, ct, me}, ""},
		{"extra field", "GET", "/users/me", answer{200, ct, strings.Replace(me, `"id"`, `"password":"x","id"`, 1)}, "password"},
		{"wrong type", "GET", "/users/me", answer{200, ct, strings.Replace(me, `false`, `"no"`, 1)}, "totp_enabled"},
		{"missing field", "GET", "/users/me", answer{200, ct, strings.Replace(me, `"email":"op@example.com",`, ``, 1)}, "email"},
		{"another content type", "GET", "/users/me", answer{200, map[string]string{"Content-Type": "text/html"}, me}, "Content-Type"},
		{"undeclared status", "GET", "/users/me", answer{418, ct, fmt.Sprintf(errJSON, "teapot")}, "status is not supported"},
		{"error shape", "GET", "/users/me", answer{401, with("WWW-Authenticate", `Bearer realm="tradeops"`), fmt.Sprintf(errJSON, "unauthorized")}, ""},
		{"error not in the shape", "GET", "/users/me", answer{401, with("WWW-Authenticate", `Bearer realm="tradeops"`), `{"code":"unauthorized"}`}, "error"},
		{"401 without WWW-Authenticate", "GET", "/users/me", answer{401, ct, fmt.Sprintf(errJSON, "unauthorized")}, "WWW-Authenticate"},
		{"429 with Retry-After", "POST", "/auth/login", answer{429, with("Retry-After", "3"), fmt.Sprintf(errJSON, "too_many_attempts")}, ""},
		{"429 without Retry-After", "POST", "/auth/login", answer{429, ct, fmt.Sprintf(errJSON, "too_many_attempts")}, "Retry-After"},
		{"503 without Retry-After", "GET", "/ops/audit/me", answer{503, ct, fmt.Sprintf(errJSON, "unavailable")}, "Retry-After"},
		{"Retry-After not seconds", "GET", "/ops/audit/me", answer{503, with("Retry-After", "soon"), fmt.Sprintf(errJSON, "unavailable")}, "Retry-After"},
		{"token cacheable", "POST", "/auth/login", answer{200, ct, `{"access_token":"t","token_type":"bearer","expires_in":900}`}, "Cache-Control"},
		{"path parameter", "DELETE", "/users/exchange-secrets/ibkr", answer{204, nil, ""}, ""},
		{"metrics", "GET", "/metrics", answer{200, map[string]string{"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}, "# HELP x\n"}, ""},
		{"unknown route answered", "GET", "/users/everyone", answer{200, ct, `{}`}, "not described"},
		{"unknown route, 404", "GET", "/users/everyone", answer{404, ct, fmt.Sprintf(errJSON, "not_found")}, ""},
		{"unknown route, other code", "GET", "/users/everyone", answer{404, ct, fmt.Sprintf(errJSON, "user_not_found")}, "not_found"},
		{"unknown method, 405", "DELETE", "/users/me", answer{405, ct, fmt.Sprintf(errJSON, "method_not_allowed")}, ""},
		{"unknown method answered", "DELETE", "/users/me", answer{204, nil, ""}, "not described"},
		{"bad path, 400", "GET", "/users/me%00", answer{400, ct, fmt.Sprintf(errJSON, "invalid_encoding")}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			next = c.answer
			mu.Unlock()
			rec := &recorder{TB: t}
			req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: NewValidatingTransport(rec, nil)}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != c.body {
				t.Errorf("the caller read %q, the server sent %q", body, c.body)
			}
			switch {
			case c.drift == "" && len(rec.errs) > 0:
				t.Errorf("reported a matching answer: %v", rec.errs)
			case c.drift != "" && (len(rec.errs) != 1 || !strings.Contains(rec.errs[0], c.drift)):
				t.Errorf("want one report naming %q, got %v", c.drift, rec.errs)
			}
		})
	}
}

// The formats the description uses are checked, not only declared.
func TestFormatsAreChecked(t *testing.T) {
	for _, c := range []struct {
		format, value string
		ok            bool
	}{
		{"uuid", "3a43937b-d972-4c70-b14c-a980007fbb76", true},
		{"uuid", "admin", false},
		{"email", "op@example.com", true},
		{"email", "op", false},
	} {
		err := (&openapi3.Schema{Type: &openapi3.Types{"string"}, Format: c.format}).VisitJSON(c.value, formats...)
		if (err == nil) != c.ok {
			t.Errorf("%s %q: %v", c.format, c.value, err)
		}
	}
}

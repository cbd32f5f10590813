package http

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

// TestBadBytesInURLAreRefusedBeforeRouting: NUL, invalid UTF-8, oversized
// values and unparseable query strings are a 400 with a stable code on any
// path, and the route's handler never runs.
func TestBadBytesInURLAreRefusedBeforeRouting(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil })
	long := strings.Repeat("a", maxQueryValueBytes+1)
	for path, code := range map[string]string{
		"/query/pro%00be":                codeInvalidEncoding,
		"/query/%ff%fe":                  codeInvalidEncoding,
		"/query/x?type=%00":              codeInvalidEncoding,
		"/query/x?type=%ff%fe":           codeInvalidEncoding,
		"/query/x?user=%00":              codeInvalidEncoding,
		"/query/x?type=ok&type=a%00":     codeInvalidEncoding,
		"/query/x?%00=1":                 codeInvalidEncoding,
		"/query/x?%c3=1":                 codeInvalidEncoding,
		"/nowhere%00":                    codeInvalidEncoding,
		"/query/x?type=" + long:          codeFieldTooLong,
		"/query/x?type=%zz":              codeMalformedQuery,
		"/query/x?type=a;user=b":         codeMalformedQuery,
		"/healthz?x=%ff":                 codeInvalidEncoding,
		"/echo?type=%00":                 codeInvalidEncoding, // POST route, GET: refused before the 405
		"/query/x?type=" + long + "%00":  codeInvalidEncoding,
		"/query/x?type=ok&limit=" + long: codeFieldTooLong,
		"/query/ok?type=auth.%E2%9C":     codeInvalidEncoding, // a cut multi-byte sequence
	} {
		resp, eb := do(t, http.MethodGet, srv.URL+path, "", "")
		if resp.StatusCode != http.StatusBadRequest || eb.Error.Code != code {
			t.Errorf("%.60s: got %d %+v, want 400 %s", path, resp.StatusCode, eb, code)
		}
		if strings.Contains(eb.Error.Message, "\x00") || strings.Contains(eb.Error.Message, "\ufffd") {
			t.Errorf("%.60s: message echoes the bad bytes: %q", path, eb.Error.Message)
		}
	}
	// Valid text passes untouched, multi-byte characters included.
	resp, _ := do(t, http.MethodGet, srv.URL+"/query/gr%C3%BC%C3%9Fe?type=auth.&user=%E2%9C%93", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("valid text refused: %d", resp.StatusCode)
	}
}

// TestRawBytesInRequestLine sends bytes a client library would escape: the
// raw path and query reach the check as they are.
func TestRawBytesInRequestLine(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil })
	for _, target := range []string{"/query/\xff\xfe", "/query/x?type=\xff", "/query/x?type=a\xc3"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":"invalid_encoding"`) {
			t.Errorf("%q: %d %s", target, resp.StatusCode, body)
		}
	}
}

func TestBadTextInJSONBodies(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil })
	const js = "application/json"
	for _, c := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"NUL escape in a value", `{"symbol":"BTC\u0000USDT","qty":1}`, 400, codeInvalidEncoding, ""},
		{"NUL escape in a key", `{"sym\u0000bol":"x"}`, 400, "unknown_field", ""},
		{"invalid UTF-8 in a value", "{\"symbol\":\"\xff\xfe\",\"qty\":1}", 400, codeInvalidEncoding, ""},
		{"invalid UTF-8 outside strings", "{\"symbol\":\"x\"}\xff", 400, codeInvalidEncoding, ""},
		{"an escaped backslash is no NUL", `{"symbol":"a\\u0000b","qty":1}`, 200, "", ""},
		{"wrong type names JSON, not Go", `{"qty":"ten"}`, 400, "invalid_field", `field "qty" must be a number`},
		{"string field given a number", `{"symbol":5}`, 400, "invalid_field", `field "symbol" must be a string`},
		{"a string, not an object", `"abc"`, 400, "malformed_json", "request body must be a JSON object"},
		{"an array, not an object", `[1,2]`, 400, "malformed_json", "request body must be a JSON object"},
		{"a number, not an object", `42`, 400, "malformed_json", "request body must be a JSON object"},
		{"a long unknown field is not echoed", `{"` + strings.Repeat("k", 500) + `":1}`, 400, "unknown_field", "request body has an unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, eb := do(t, http.MethodPost, srv.URL+"/echo", js, c.body)
			if resp.StatusCode != c.status || eb.Error.Code != c.code || (c.msg != "" && eb.Error.Message != c.msg) {
				t.Fatalf("got %d %+v, want %d %s %q", resp.StatusCode, eb, c.status, c.code, c.msg)
			}
			for _, goName := range []string{"echoReq", "http.", "float64", "string "} {
				if strings.Contains(eb.Error.Message, goName) {
					t.Fatalf("message names a Go type: %q", eb.Error.Message)
				}
			}
		})
	}
}

func TestJSONKindNamesJSONTypes(t *testing.T) {
	type inner struct{ A int }
	var v struct {
		S  string
		P  *string
		B  bool
		I  int64
		F  float64
		L  []string
		M  map[string]int
		O  inner
		IP net.IP // a TextUnmarshaler: a string in JSON
	}
	want := map[string]string{"S": "a string", "P": "a string", "B": "true or false", "I": "an integer", "F": "a number",
		"L": "an array", "M": "an object", "O": "an object", "IP": "a string"}
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if got := jsonKind(f.Type); got != want[f.Name] {
			t.Errorf("%s (%s): %q, want %q", f.Name, f.Type, got, want[f.Name])
		}
	}
}

// TestNotReadyIsUnavailable: until the service is ready, /healthz and the
// API answer 503, the API with the code of any outage and Retry-After.
func TestNotReadyIsUnavailable(t *testing.T) {
	ready := false
	srv := newTestServer(t, func(context.Context) error { return nil }, func(o *Options) { o.Ready = func() bool { return ready } })
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"status":"starting"`) || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("healthz before ready: %d %s Retry-After=%q", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	r, eb := do(t, http.MethodGet, srv.URL+"/fail", "", "")
	if r.StatusCode != http.StatusServiceUnavailable || eb.Error.Code != "unavailable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("API before ready: %d %+v Retry-After=%q", r.StatusCode, eb, r.Header.Get("Retry-After"))
	}
	ready = true
	if r, _ := do(t, http.MethodGet, srv.URL+"/healthz", "", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("healthz when ready: %d", r.StatusCode)
	}
}

// TestClassifierMapsUnclassifiedErrors: an error no layer classified goes
// through Options.Classify before it would become a 500.
func TestClassifierMapsUnclassifiedErrors(t *testing.T) {
	srv := newTestServer(t, func(context.Context) error { return nil }, func(o *Options) {
		o.Classify = func(err error) error {
			if strings.Contains(err.Error(), "canary") {
				return domain.Wrap(err, domain.KindUnavailable, "unavailable", "the database is unavailable")
			}
			return err
		}
	})
	r, eb := do(t, http.MethodGet, srv.URL+"/boom", "", "")
	if r.StatusCode != http.StatusServiceUnavailable || eb.Error.Code != "unavailable" || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("got %d %+v Retry-After=%q", r.StatusCode, eb, r.Header.Get("Retry-After"))
	}
	// Classified errors are not reclassified.
	if r, eb := do(t, http.MethodGet, srv.URL+"/fail", "", ""); r.StatusCode != http.StatusTooManyRequests || eb.Error.Code != "too_many_attempts" {
		t.Fatalf("classified error changed: %d %+v", r.StatusCode, eb)
	}
}

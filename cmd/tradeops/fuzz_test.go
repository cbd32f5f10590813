package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The fuzz targets run the API as serve wires it, on one database per fuzz
// worker: whatever the bytes, an answer is never a 5xx, and a 4xx is the
// API's JSON error. `make fuzz` (part of `make test`) runs each for a few
// seconds; the seed corpus is in testdata/fuzz/<target>/.

// FuzzLoginForm posts arbitrary bodies as the login form.
func FuzzLoginForm(f *testing.F) {
	h := newAPI(f)
	h.createUser("fuzz@example.com", "operator", "correct horse battery")
	f.Fuzz(func(t *testing.T, body string) {
		req, err := http.NewRequest(http.MethodPost, h.url+"/auth/login", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", form)
		apiCall(t, h, req)
	})
}

// FuzzAuditQuery sends arbitrary query strings to the caller's and the
// admin's audit endpoints.
func FuzzAuditQuery(f *testing.F) {
	h := newAPI(f)
	h.createUser("fuzz-admin@example.com", "admin", "correct horse battery")
	tok := h.mustLogin("fuzz-admin@example.com", "correct horse battery", "")
	f.Fuzz(func(t *testing.T, query string) {
		for _, path := range []string{"/ops/audit/me", "/ops/audit"} {
			req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Verbatim, except for bytes no request line may carry (net/http
			// would refuse the request before any handler, in plain text).
			req.URL.RawQuery = requestLineSafe(query)
			req.Header.Set("Authorization", "Bearer "+tok)
			apiCall(t, h, req)
		}
	})
}

// requestLineSafe percent-encodes control bytes, space, DEL and '#'; every
// other byte, invalid UTF-8 included, is left as it is.
func requestLineSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

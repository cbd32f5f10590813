package http

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/tradeops/tradeops/domain"
)

// Bounds on request strings the port enforces before any app call, so that
// nothing an attacker sizes reaches the database or an event.
const (
	// maxQueryValueBytes bounds every query parameter; the ones the API
	// reads (cursors, event types, user ids or emails, times) are far
	// shorter.
	maxQueryValueBytes = 1024
	// maxOTPBytes bounds a one-time code (6 digits; a little slack for
	// clients that send spaces).
	maxOTPBytes = 16
	// maxNameInMessage is the longest parameter or field name an error
	// message repeats; longer ones are not echoed.
	maxNameInMessage = 64
)

// Codes of input the port refuses.
const (
	codeInvalidEncoding = "invalid_encoding"
	codeFieldTooLong    = "field_too_long"
	codeMalformedQuery  = "malformed_query"
)

// validateInput refuses a request whose path or query string holds NUL
// bytes or invalid UTF-8, or whose query does not parse or holds a value
// over maxQueryValueBytes: 400 before routing, so no handler sees it, with
// the refusal instrumented like an unmatched route.
func validateInput(next http.Handler, instrument func(http.Handler) http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkURL(r.URL); err != nil {
			instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { WriteError(w, r, err) })).ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkURL checks the decoded path: every byte of the raw path reaches it
// either as is or through its escape, and an undecodable escape never gets
// this far (net/http answers 400 itself).
func checkURL(u *url.URL) error {
	if !domain.ValidText(u.Path) {
		return domain.Errorf(domain.KindInvalid, codeInvalidEncoding, "the URL path must be valid UTF-8 without NUL bytes")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return domain.Errorf(domain.KindInvalid, codeMalformedQuery, "the query string is not valid URL encoding")
	}
	return checkValues("query parameter", q, maxQueryValueBytes)
}

// checkValues refuses names or values (of query parameters or form fields,
// as kind says) that are not valid text, and values over maxBytes.
func checkValues(kind string, v url.Values, maxBytes int) error {
	// Sorted, so that the same request always names the same culprit.
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !domain.ValidText(name) {
			return domain.Errorf(domain.KindInvalid, codeInvalidEncoding, "a %s name is not valid UTF-8 or holds a NUL byte", kind)
		}
		for _, val := range v[name] {
			if err := checkText(kind, name, val, maxBytes); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkText refuses a value that is not valid text or is over maxBytes;
// the error names the parameter or field, never echoes the value.
func checkText(kind, name, val string, maxBytes int) error {
	if !domain.ValidText(val) {
		return domain.Errorf(domain.KindInvalid, codeInvalidEncoding, "%s must be valid UTF-8 without NUL bytes", describe(kind, name))
	}
	if len(val) > maxBytes {
		return domain.Errorf(domain.KindInvalid, codeFieldTooLong, "%s must be at most %d bytes long", describe(kind, name), maxBytes)
	}
	return nil
}

// describe names a parameter or field for an error message, when its name
// is short valid text; otherwise it is not repeated.
func describe(kind, name string) string {
	if name == "" || len(name) > maxNameInMessage || !domain.ValidText(name) {
		return "a " + kind
	}
	return fmt.Sprintf("%s %q", kind, name)
}

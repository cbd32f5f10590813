// Package apispec is test support: it checks the responses a test receives
// from a real tradeops server against the API's OpenAPI description
// (api/openapi.yaml), so that the description cannot drift from the server.
//
// Only responses are validated. Tests send malformed requests on purpose
// (that is how bad input is tested), so validating requests would reject
// the very calls that matter; the server's own refusals of them are
// responses, and those are checked.
package apispec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tradeops/tradeops/api"
)

// The console's static files (GET /console/...) are text kin-openapi has
// no decoder for; their schemas are plain strings.
func init() {
	for _, t := range []string{"text/html", "text/javascript", "text/css", "text/markdown", "image/svg+xml"} {
		openapi3filter.RegisterBodyDecoder(t, openapi3filter.PlainBodyDecoder)
	}
}

// loadSpec parses and validates the document and builds its router, once
// per test binary.
var loadSpec = sync.OnceValues(func() (*spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.yaml: %w", err)
	}
	errSchema := doc.Components.Schemas["Error"]
	if errSchema == nil || errSchema.Value == nil {
		return nil, errors.New("api/openapi.yaml has no components.schemas.Error")
	}
	return &spec{doc: doc, router: router, errorSchema: errSchema.Value}, nil
})

// spec is the description, its router, and the error shape an unknown
// route answers with.
type spec struct {
	doc         *openapi3.T
	router      routers.Router
	errorSchema *openapi3.Schema
}

// Document returns the parsed, validated description.
func Document() (*openapi3.T, error) {
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	return s.doc, nil
}

// NewValidatingTransport returns a RoundTripper that sends through base
// (http.DefaultTransport when nil) and checks every response with Check.
func NewValidatingTransport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return validating{t: t, base: base}
}

// Client is an http.Client whose responses are checked with Check.
func Client(t testing.TB) *http.Client {
	return &http.Client{Transport: NewValidatingTransport(t, nil)}
}

type validating struct {
	t    testing.TB
	base http.RoundTripper
}

func (v validating) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	Check(v.t, req, resp)
	return resp, nil
}

// Check reports a test error (t.Errorf: it may run on a transport's
// goroutine) when resp, the answer to req, does not match the description:
// a status the operation does not declare, a declared header missing or
// malformed (Retry-After, WWW-Authenticate, Cache-Control), another
// content type, a body that does not match its schema. A route the
// description does not have may only answer what the server answers for
// any unknown route, before or instead of routing: 404 not_found, 405
// method_not_allowed, 400 for a URL that is not valid text, 413 for a body
// over the limit, in the Error shape. resp.Body is read and replaced, so
// the caller reads it as if nothing happened.
func Check(t testing.TB, req *http.Request, resp *http.Response) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		t.Errorf("apispec: %s %s: reading the response: %v", req.Method, req.URL.Path, err)
		return
	}
	if err := check(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("apispec: %s %s: %d response does not match api/openapi.yaml: %v\nbody: %.600s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// formats are the string formats the description uses beyond the ones
// kin-openapi checks by default (date, date-time, byte).
var formats = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
	openapi3.WithStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
}

func check(req *http.Request, status int, header http.Header, body []byte) error {
	s, err := loadSpec()
	if err != nil {
		return err
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return s.checkUnrouted(err, status, header, body)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: formats}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Options:                opts,
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// unroutedCodes are the answers the server gives on a path or method the
// description does not have (ports/http: the not-found and
// method-not-allowed handlers, the input checks before routing, the body
// limit).
var unroutedCodes = map[int][]string{
	http.StatusNotFound:              {"not_found"},
	http.StatusMethodNotAllowed:      {"method_not_allowed"},
	http.StatusBadRequest:            {"invalid_encoding", "malformed_query", "field_too_long"},
	http.StatusRequestEntityTooLarge: {"body_too_large"},
}

func (s *spec) checkUnrouted(routeErr error, status int, header http.Header, body []byte) error {
	codes, ok := unroutedCodes[status]
	if !ok {
		return fmt.Errorf("the route is not described (%v), yet the server answered it", routeErr)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("an unknown route's error has Content-Type %q", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("an unknown route's error is not JSON: %w", err)
	}
	if err := s.errorSchema.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("an unknown route's error does not match components.schemas.Error: %w", err)
	}
	code, _ := v.(map[string]any)["error"].(map[string]any)["code"].(string)
	if !slices.Contains(codes, code) {
		return fmt.Errorf("the route is not described (%v); an unknown route answers %d with code %v, not %q", routeErr, status, codes, code)
	}
	return nil
}

package http

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/tradeops/tradeops/domain"
)

// MaxBodyBytes is the largest request body accepted (413 above it).
const MaxBodyBytes = 64 << 10

var errTooLarge = &domain.Error{Kind: domain.KindInvalid, Code: "body_too_large", Message: "request body exceeds 64 KiB"}

// DecodeJSON reads exactly one JSON object into dst: the content type must be
// JSON (415), unknown fields, wrong types, trailing data, invalid UTF-8 or
// NUL characters in any string (encoding/json would silently turn the
// former into U+FFFD and pass the latter on) and bodies over 64 KiB (413)
// are rejected. Messages name the field in JSON terms, never a Go type, and
// never echo values.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeErrorStatus(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
			return false
		}
	}
	// The body limit (requestContext) bounds what ReadAll holds.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeDecodeError(w, err)
		return false
	}
	if !utf8.Valid(body) {
		writeErrorStatus(w, http.StatusBadRequest, codeInvalidEncoding, "request body must be valid UTF-8")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeDecodeError(w, err)
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeErrorStatus(w, http.StatusBadRequest, "malformed_json", "request body must hold a single JSON object")
		return false
	}
	if hasNUL(body) {
		writeErrorStatus(w, http.StatusBadRequest, codeInvalidEncoding, "strings in the request body must not hold NUL characters")
		return false
	}
	return true
}

// hasNUL reports whether a string (key or value) of the valid JSON document
// body holds U+0000, which only the \u0000 escape can put there.
func hasNUL(body []byte) bool {
	if !bytes.Contains(body, []byte(`\u0000`)) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
}

func writeDecodeError(w http.ResponseWriter, err error) {
	var (
		mbe    *http.MaxBytesError
		syn    *json.SyntaxError
		typ    *json.UnmarshalTypeError
		status = http.StatusBadRequest
		code   = "malformed_json"
		msg    = "request body is not valid JSON"
	)
	switch {
	case errors.As(err, &mbe):
		status, code, msg = http.StatusRequestEntityTooLarge, errTooLarge.Code, errTooLarge.Message
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		msg = "request body is not valid JSON"
	case errors.As(err, &typ) && typ.Field == "":
		msg = "request body must be a JSON object"
	case errors.As(err, &typ):
		code, msg = "invalid_field", fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type))
	case errors.Is(err, io.EOF):
		msg = "request body is empty"
	default:
		if f, ok := unknownField(err); ok {
			code, msg = "unknown_field", "request body has an unknown field"
			if len(f) <= maxNameInMessage+2 { // quoted
				msg = "unknown field " + f
			}
		}
	}
	writeErrorStatus(w, status, code, msg)
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// jsonKind names what JSON a Go type decodes from, for error messages:
// clients know JSON, not our Go types.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "of another type"
}

// unknownField returns the quoted name from encoding/json's report of an
// unknown field, `json: unknown field "x"`.
func unknownField(err error) (string, bool) {
	const prefix = "json: unknown field "
	s := err.Error()
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}

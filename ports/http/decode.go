package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/tradeops/tradeops/domain"
)

// MaxBodyBytes is the largest request body accepted (413 above it).
const MaxBodyBytes = 64 << 10

var errTooLarge = &domain.Error{Kind: domain.KindInvalid, Code: "body_too_large", Message: "request body exceeds 64 KiB"}

// DecodeJSON reads exactly one JSON object into dst: the content type must be
// JSON (415), unknown fields, wrong types, trailing data and bodies over
// 64 KiB (413) are rejected. Messages name the field, never echo values.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeErrorStatus(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
			return false
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeDecodeError(w, r, err)
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeDecodeError(w, r, err)
			return false
		}
		writeErrorStatus(w, http.StatusBadRequest, "malformed_json", "request body must hold a single JSON object")
		return false
	}
	return true
}

func writeDecodeError(w http.ResponseWriter, r *http.Request, err error) {
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
	case errors.As(err, &typ):
		code, msg = "invalid_field", fmt.Sprintf("field %q has the wrong type (want %s)", typ.Field, typ.Type)
	case errors.Is(err, io.EOF):
		msg = "request body is empty"
	default:
		// encoding/json reports unknown fields as `json: unknown field "x"`.
		if f, ok := unknownField(err); ok {
			code, msg = "unknown_field", fmt.Sprintf("unknown field %s", f)
		}
	}
	writeErrorStatus(w, status, code, msg)
}

func unknownField(err error) (string, bool) {
	const prefix = "json: unknown field "
	s := err.Error()
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}

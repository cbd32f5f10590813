package http

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/tradeops/tradeops/domain"
)

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// statusOf maps an error kind to an HTTP status: the only place that does.
func statusOf(k domain.Kind) int {
	switch k {
	case domain.KindInvalid:
		return http.StatusBadRequest
	case domain.KindUnauthorized:
		return http.StatusUnauthorized
	case domain.KindForbidden:
		return http.StatusForbidden
	case domain.KindNotFound:
		return http.StatusNotFound
	case domain.KindConflict:
		return http.StatusConflict
	case domain.KindTooMany:
		return http.StatusTooManyRequests
	case domain.KindUnavailable:
		return http.StatusServiceUnavailable
	case domain.KindUpstream:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// WriteError writes err in the API's error shape. Classified errors keep
// their code and caller-safe message; an error no layer classified first
// goes through Options.Classify (which recognises, e.g., an unreachable
// database), and if still unclassified is logged and answered with a
// generic 500 that reveals nothing. Every 503 carries Retry-After.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if classify, ok := r.Context().Value(classifierKey{}).(func(error) error); ok && domain.ErrorKind(err) == domain.KindInternal {
		err = classify(err)
	}
	var e *domain.Error
	if !errors.As(err, &e) {
		LoggerFrom(r.Context()).Error("request failed", "err", err)
		e = &domain.Error{Kind: domain.KindInternal, Code: "internal", Message: "internal error"}
	}
	status := statusOf(e.Kind)
	if status >= 500 && e.Err != nil {
		LoggerFrom(r.Context()).Error("request failed", "code", e.Code, "err", e.Err)
	}
	retryAfter := e.RetryAfterSeconds
	if status == http.StatusServiceUnavailable && retryAfter == 0 {
		retryAfter = 1
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeErrorStatus(w, status, e.Code, e.Message)
}

// classifierKey holds Options.Classify in every request's context, so that
// WriteError, called from any handler, applies it.
type classifierKey struct{}

func writeErrorStatus(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: message}})
}

// WriteJSON writes v as the JSON response body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

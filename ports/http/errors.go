package http

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/tradeops/tradeops/domain"
)

// errorBody is the one error shape of the API. Exchange and execution
// errors add "status":"error", the execution's id and the exchange's own
// code (DESIGN §5: a JSON number for Binance, a string for IBKR).
type errorBody struct {
	Status      string      `json:"status,omitempty"`
	ExecutionID string      `json:"execution_id,omitempty"`
	Error       errorDetail `json:"error"`
}

type errorDetail struct {
	Code         string               `json:"code"`
	Message      string               `json:"message"`
	ExchangeCode *domain.ExchangeCode `json:"exchange_code,omitempty"`
}

// statusOf maps an error kind to an HTTP status: the only place that does.
func statusOf(k domain.Kind) int {
	switch k {
	case domain.KindInvalid:
		return http.StatusBadRequest
	case domain.KindUnprocessable:
		return http.StatusUnprocessableEntity
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
	case domain.KindUpstreamTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// WriteError writes err in the API's error shape. Classified errors keep
// their code and caller-safe message; an error no layer classified first
// goes through Options.Classify (which recognises, e.g., an unreachable
// database), and if still unclassified is logged and answered with a
// generic 500 that reveals nothing. Every 503 carries Retry-After.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, retryAfter, body := errorResponse(r, err)
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	WriteJSON(w, status, body)
}

// errorResponse is WriteError's answer to err: status, Retry-After seconds
// (0 for none) and body. It logs the cause of a 5xx.
func errorResponse(r *http.Request, err error) (int, int, errorBody) {
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
	body := errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}}
	var xe *domain.ExchangeError
	if errors.As(err, &xe) {
		body.Status = "error"
		if !xe.Code.IsZero() {
			body.Error.ExchangeCode = &xe.Code
		}
		if status >= 500 && e.Err == nil {
			LoggerFrom(r.Context()).Warn("exchange error", "code", e.Code, "err", err)
		}
	}
	return status, retryAfter, body
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

package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

// Execution holds the use cases behind the execution routes.
type Execution struct {
	Prepare     *app.PrepareExecutionHandler
	BinanceTest *app.BinanceTestOrderHandler
	IBKRTest    *app.IBKRTestOrderHandler
}

// ExecutionRoutes registers POST /ops/execution/prepare and the two test
// orders (DESIGN §5), each accepting an Idempotency-Key header.
func ExecutionRoutes(e Execution, requireUser mux.MiddlewareFunc) Registrar {
	return func(r *mux.Router) {
		r.Handle("/ops/execution/prepare", requireUser(http.HandlerFunc(e.prepare))).Methods(http.MethodPost)
		r.Handle("/ops/execution/binance/test-order", requireUser(http.HandlerFunc(e.binanceTest))).Methods(http.MethodPost)
		r.Handle("/ops/execution/ibkr/test-order", requireUser(http.HandlerFunc(e.ibkrTest))).Methods(http.MethodPost)
	}
}

// orderFields are the order's fields as sent. qty and price stay raw JSON:
// a number's text is parsed exactly by the domain, never through float64.
type orderFields struct {
	Symbol    string          `json:"symbol"`
	Side      string          `json:"side"`
	Qty       json.RawMessage `json:"qty"`
	Price     json.RawMessage `json:"price"`
	OrderType string          `json:"order_type"`
}

type prepareRequest struct {
	Exchange string `json:"exchange"`
	orderFields
}

// orderInput turns the decoded fields and the Idempotency-Key header into
// the app's input, or answers 400.
func orderInput(w http.ResponseWriter, r *http.Request, f orderFields) (app.OrderInput, bool) {
	qty, err := numberText(f.Qty, "qty", "invalid_quantity")
	if err == nil {
		var price string
		if price, err = numberText(f.Price, "price", "invalid_price"); err == nil {
			keys := r.Header.Values("Idempotency-Key")
			in := app.OrderInput{Symbol: f.Symbol, Side: f.Side, Qty: qty, Price: price, OrderType: f.OrderType, IdempotencyKeySent: len(keys) > 0}
			if len(keys) == 1 {
				in.IdempotencyKey = keys[0]
			}
			return in, true
		}
	}
	WriteError(w, r, err)
	return app.OrderInput{}, false
}

// numberText is the text of a JSON number, or the content of a JSON string,
// for the domain's exact parser; "" when absent or null.
func numberText(raw json.RawMessage, field, code string) (string, error) {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), nil
	}
	return "", domain.Errorf(domain.KindInvalid, code, "%s must be a number or a string such as 0.01", field)
}

func (e Execution) prepare(w http.ResponseWriter, r *http.Request) {
	var req prepareRequest
	if !DecodeJSON(w, r, &req) {
		return
	}
	in, ok := orderInput(w, r, req.orderFields)
	if !ok {
		return
	}
	writeReply(w, e.Prepare.Handle(r.Context(), app.PrepareExecution{Exchange: req.Exchange, OrderInput: in},
		func(p app.PreparedExecution, err error) app.Response {
			if err != nil {
				return errorReply(r, err, "")
			}
			return jsonReply(http.StatusOK, preparedJSON(p), 0)
		}))
}

func (e Execution) binanceTest(w http.ResponseWriter, r *http.Request) {
	e.testOrder(w, r, e.BinanceTest.Handle)
}

func (e Execution) ibkrTest(w http.ResponseWriter, r *http.Request) {
	e.testOrder(w, r, e.IBKRTest.Handle)
}

func (Execution) testOrder(w http.ResponseWriter, r *http.Request, handle func(ctx context.Context, in app.OrderInput, render app.Render[app.TestOrderResult]) app.Reply) {
	var req orderFields
	if !DecodeJSON(w, r, &req) {
		return
	}
	in, ok := orderInput(w, r, req)
	if !ok {
		return
	}
	writeReply(w, handle(r.Context(), in, func(t app.TestOrderResult, err error) app.Response {
		if err != nil {
			return errorReply(r, err, t.ExecutionID)
		}
		return jsonReply(http.StatusOK, testOrderJSON(t), 0)
	}))
}

type shadowJSON struct {
	Profile      domain.RiskProfile     `json:"profile"`
	Decision     domain.DecisionOutcome `json:"decision"`
	FailedChecks []string               `json:"failed_checks"`
}

type preparedResponse struct {
	ExecutionID      string                 `json:"execution_id"`
	Exchange         domain.Exchange        `json:"exchange"`
	Symbol           string                 `json:"symbol"`
	Side             domain.Side            `json:"side"`
	OrderType        domain.OrderType       `json:"order_type"`
	Qty              string                 `json:"qty"`
	Price            string                 `json:"price,omitempty"`
	ReferencePrice   string                 `json:"reference_price"`
	Notional         string                 `json:"notional"`
	RiskProfile      domain.RiskProfile     `json:"risk_profile"`
	Decision         domain.DecisionOutcome `json:"decision"`
	Checks           []domain.Check         `json:"checks"`
	Shadow           shadowJSON             `json:"shadow"`
	SecretConfigured bool                   `json:"secret_configured"`
}

// preparedJSON renders a prepare's answer; decimals are strings, exact.
func preparedJSON(p app.PreparedExecution) preparedResponse {
	o := p.Order
	return preparedResponse{
		ExecutionID: p.ExecutionID, Exchange: o.Exchange(), Symbol: o.Symbol(), Side: o.Side(), OrderType: o.OrderType(),
		Qty: o.Qty().String(), Price: o.LimitPrice().String(), ReferencePrice: p.Reference.String(),
		Notional: p.Decision.Notional.String(), RiskProfile: p.Decision.Profile, Decision: p.Decision.Outcome, Checks: p.Decision.Checks,
		Shadow:           shadowJSON{Profile: p.Shadow.Profile, Decision: p.Shadow.Outcome, FailedChecks: p.Shadow.FailedCodes()},
		SecretConfigured: p.SecretConfigured,
	}
}

type testOrderResponse struct {
	ExecutionID          string               `json:"execution_id"`
	Status               string               `json:"status"`
	Exchange             domain.Exchange      `json:"exchange"`
	Mode                 domain.TestOrderMode `json:"mode"`
	Validated            bool                 `json:"validated"`
	SentToMatchingEngine bool                 `json:"sent_to_matching_engine"`
	Message              string               `json:"message"`
	ExchangeResponse     json.RawMessage      `json:"exchange_response,omitempty"`
	Preview              json.RawMessage      `json:"preview,omitempty"`
}

// testOrderJSON says plainly what happened: the exchange validated the
// order, and it never reached a matching engine.
func testOrderJSON(t app.TestOrderResult) testOrderResponse {
	out := testOrderResponse{ExecutionID: t.ExecutionID, Status: "success", Exchange: t.Exchange, Mode: t.Mode, Validated: true}
	if t.Exchange == domain.ExchangeIBKR {
		out.Message = "previewed with IBKR's what-if; no order was placed"
		out.Preview = t.Answer
	} else {
		out.Message = "validated by Binance's order/test; not sent to the matching engine"
		out.ExchangeResponse = t.Answer
	}
	return out
}

type riskRejectedBody struct {
	errorBody
	RiskProfile domain.RiskProfile     `json:"risk_profile"`
	Decision    domain.DecisionOutcome `json:"decision"`
	Checks      []domain.Check         `json:"checks"`
}

// errorReply renders err; an error after the decision names the execution.
func errorReply(r *http.Request, err error, executionID string) app.Response {
	status, retryAfter, body := errorResponse(r, err)
	if executionID != "" {
		body.Status, body.ExecutionID = "error", executionID
	}
	var rr *app.RiskRejected
	if errors.As(err, &rr) {
		body.Status, body.ExecutionID = "error", rr.ExecutionID
		return jsonReply(status, riskRejectedBody{errorBody: body, RiskProfile: rr.Decision.Profile, Decision: rr.Decision.Outcome, Checks: rr.Decision.Checks}, retryAfter)
	}
	return jsonReply(status, body, retryAfter)
}

// jsonReply encodes v as WriteJSON would, for a reply that may be stored
// and replayed.
func jsonReply(status int, v any, retryAfter int) app.Response {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		// Only an exchange answer that is not JSON can get here; the
		// adapters check theirs.
		b.Reset()
		_ = json.NewEncoder(&b).Encode(errorBody{Error: errorDetail{Code: "internal", Message: "internal error"}})
		status = http.StatusInternalServerError
	}
	return app.Response{Status: status, Body: b.Bytes(), RetryAfter: retryAfter}
}

// writeReply sends an execution command's reply; a replay says so.
func writeReply(w http.ResponseWriter, reply app.Reply) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if reply.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(reply.RetryAfter))
	}
	if reply.Replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(reply.Status)
	_, _ = w.Write(reply.Body)
}

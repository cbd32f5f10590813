package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// executionEventsVersion is the schema version of every execution payload
// below; bump it (and add an upcaster) when one changes shape.
const executionEventsVersion = 1

// ExecutionStream is the event stream of one execution (a prepare or a test
// order).
func ExecutionStream(id string) string { return "execution-" + id }

// UTCDay is the calendar day, in UTC, that daily limits and the daily
// comparison file t under: "2006-01-02".
func UTCDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// TestOrderMode says where a test order went: Binance's testnet or live
// order/test endpoint, the IBKR paper gateway, or the IBKR simulator.
type TestOrderMode string

const (
	TestOrderModeTestnet   TestOrderMode = "testnet"
	TestOrderModeLive      TestOrderMode = "live"
	TestOrderModePaper     TestOrderMode = "paper"
	TestOrderModeSimulated TestOrderMode = "simulated"
)

// TestOrderOutcome classifies a failed test order: the exchange said no
// (rejected), or we cannot know what it did — a 5xx or a timeout (unknown).
type TestOrderOutcome string

const (
	TestOrderRejected TestOrderOutcome = "rejected"
	TestOrderUnknown  TestOrderOutcome = "unknown"
)

// maxExchangeMessage bounds the exchange's error text kept in an event: a
// gateway's 5xx may answer with a whole HTML page, and events are forever.
const maxExchangeMessage = 512

// Execution payloads. Quantities and prices are canonical decimal strings
// (never JSON numbers, which readers would parse as floats); Day is the UTC
// day the event counts under.
type (
	ExecutionPrepared struct {
		ExecutionID    string          `json:"execution_id"`
		UserID         string          `json:"user_id"`
		Exchange       Exchange        `json:"exchange"`
		Symbol         string          `json:"symbol"`
		Side           Side            `json:"side"`
		OrderType      OrderType       `json:"order_type"`
		Qty            string          `json:"qty"`
		Price          string          `json:"price,omitempty"`
		ReferencePrice string          `json:"reference_price"`
		Notional       string          `json:"notional"`
		Profile        RiskProfile     `json:"profile"`
		Decision       DecisionOutcome `json:"decision"`
		FailedChecks   []string        `json:"failed_checks"`
		Shadow         ShadowDecision  `json:"shadow"`
		// SecretConfigured says whether the user had a secret stored for
		// the exchange; never anything about the secret itself.
		SecretConfigured bool   `json:"secret_configured"`
		Day              string `json:"day"`
	}
	// ShadowDecision is what the other profile would have decided.
	ShadowDecision struct {
		Profile      RiskProfile     `json:"profile"`
		Decision     DecisionOutcome `json:"decision"`
		FailedChecks []string        `json:"failed_checks"`
	}
	// TestOrder is what both test-order outcomes record of the order; its
	// fields are flattened into their payloads.
	TestOrder struct {
		ExecutionID string        `json:"execution_id"`
		UserID      string        `json:"user_id"`
		Symbol      string        `json:"symbol"`
		Side        Side          `json:"side"`
		OrderType   OrderType     `json:"order_type"`
		Qty         string        `json:"qty"`
		Price       string        `json:"price,omitempty"`
		Mode        TestOrderMode `json:"mode"`
		// Profile is the user's risk profile the order passed under, so
		// the daily comparison counts it without joining the prepare.
		Profile RiskProfile `json:"profile"`
	}
	TestOrderSucceeded struct {
		TestOrder
		Day string `json:"day"`
	}
	TestOrderFailed struct {
		TestOrder
		Outcome TestOrderOutcome `json:"outcome"`
		// ExchangeCode is the exchange's error code as text (Binance's
		// "-2015"), empty when it gave none (a timeout).
		ExchangeCode    string `json:"exchange_code,omitempty"`
		ExchangeMessage string `json:"exchange_message,omitempty"`
		Day             string `json:"day"`
	}
)

// NewExecutionPrepared is the execution.prepare event: order decided under
// the user's profile (decision) and shadow-evaluated under the other
// (shadow), at time at.
func NewExecutionPrepared(executionID, userID string, order OrderRequest, reference Price, decision, shadow Decision, secretConfigured bool, at time.Time) Event {
	return Event{Type: EventExecutionPrepare, SchemaVersion: executionEventsVersion, Data: ExecutionPrepared{
		ExecutionID:      executionID,
		UserID:           userID,
		Exchange:         order.Exchange(),
		Symbol:           order.Symbol(),
		Side:             order.Side(),
		OrderType:        order.OrderType(),
		Qty:              order.Qty().String(),
		Price:            order.LimitPrice().String(),
		ReferencePrice:   reference.String(),
		Notional:         decision.Notional.String(),
		Profile:          decision.Profile,
		Decision:         decision.Outcome,
		FailedChecks:     decision.FailedCodes(),
		Shadow:           ShadowDecision{Profile: shadow.Profile, Decision: shadow.Outcome, FailedChecks: shadow.FailedCodes()},
		SecretConfigured: secretConfigured,
		Day:              UTCDay(at),
	}}
}

// NewTestOrderSucceeded is execution.binance.test_order.success or
// execution.ibkr.test_order.success, after order's exchange.
func NewTestOrderSucceeded(executionID, userID string, order OrderRequest, mode TestOrderMode, profile RiskProfile, at time.Time) Event {
	return Event{Type: testOrderEvent(order, EventBinanceTestOrderOK, EventIBKRTestOrderOK), SchemaVersion: executionEventsVersion,
		Data: TestOrderSucceeded{TestOrder: newTestOrder(executionID, userID, order, mode, profile), Day: UTCDay(at)}}
}

// NewTestOrderFailed is execution.binance.test_order.error or
// execution.ibkr.test_order.error, after order's exchange. The exchange's
// message is kept up to 512 bytes of valid UTF-8.
func NewTestOrderFailed(executionID, userID string, order OrderRequest, mode TestOrderMode, profile RiskProfile, outcome TestOrderOutcome, exchangeCode, exchangeMessage string, at time.Time) Event {
	return Event{Type: testOrderEvent(order, EventBinanceTestOrderErr, EventIBKRTestOrderErr), SchemaVersion: executionEventsVersion, Data: TestOrderFailed{
		TestOrder:       newTestOrder(executionID, userID, order, mode, profile),
		Outcome:         outcome,
		ExchangeCode:    truncateUTF8(exchangeCode, maxExchangeMessage),
		ExchangeMessage: truncateUTF8(exchangeMessage, maxExchangeMessage),
		Day:             UTCDay(at),
	}}
}

// testOrderEvent picks the event type after the order's exchange.
func testOrderEvent(order OrderRequest, binance, ibkr string) string {
	if order.Exchange() == ExchangeIBKR {
		return ibkr
	}
	return binance
}

func newTestOrder(executionID, userID string, order OrderRequest, mode TestOrderMode, profile RiskProfile) TestOrder {
	return TestOrder{
		ExecutionID: executionID,
		UserID:      userID,
		Symbol:      order.Symbol(),
		Side:        order.Side(),
		OrderType:   order.OrderType(),
		Qty:         order.Qty().String(),
		Price:       order.LimitPrice().String(),
		Mode:        mode,
		Profile:     profile,
	}
}

// truncateUTF8 makes s valid UTF-8 and cuts it to at most n bytes on a rune
// boundary.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

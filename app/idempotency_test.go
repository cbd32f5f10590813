package app

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
)

func TestCheckIdempotencyKey(t *testing.T) {
	for _, ok := range []string{"a", "retry-2026-12-01T10:00:00Z", "with space", strings.Repeat("k", 128), "~!@#$%^&*()"} {
		if err := checkIdempotencyKey(ok, true); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("k", 129), "tab\t", "nul\x00", "é", "line\nbreak", "\x7f"} {
		if err := checkIdempotencyKey(bad, true); domain.ErrorKind(err) != domain.KindInvalid {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
	if err := checkIdempotencyKey("", false); err != nil {
		t.Errorf("no key: %v", err)
	}
}

func TestRequestHashIsTheCanonicalOrder(t *testing.T) {
	order := func(exchange, qty, price, typ string) domain.OrderRequest {
		o, err := domain.NewOrderRequest(exchange, "btcusdt", "buy", qty, price, typ)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a := requestHash("prepare", order("BINANCE", "0.01", "", ""))
	if b := requestHash("prepare", order("binance", "0.0100", "", "MARKET")); !bytes.Equal(a, b) {
		t.Error("one order written two ways hashes differently")
	}
	for _, other := range [][]byte{
		requestHash("test_order", order("BINANCE", "0.01", "", "")),
		requestHash("prepare", order("BINANCE", "0.02", "", "")),
		requestHash("prepare", order("IBKR", "0.01", "", "")),
		requestHash("prepare", order("BINANCE", "0.01", "95000", "LIMIT")),
	} {
		if bytes.Equal(a, other) {
			t.Error("different requests hash alike")
		}
	}
}

func TestClaimError(t *testing.T) {
	now := time.Now()
	code := func(c KeyClaim) string {
		e, _ := asDomainError(claimError(c, now))
		return e.Code
	}
	if got := code(KeyClaim{State: KeyDone, SameRequest: false}); got != "idempotency_key_reused" {
		t.Error(got)
	}
	inFlight := KeyClaim{State: KeyInFlight, SameRequest: true, ClaimedAt: now.Add(-time.Second), ExecutionID: "x"}
	if e, _ := asDomainError(claimError(inFlight, now)); e.Code != "idempotency_in_progress" || e.RetryAfterSeconds != 1 || e.Kind != domain.KindConflict {
		t.Errorf("%+v", e)
	}
	// Decided long ago and never finished: it may have sent; never again.
	inFlight.ClaimedAt = now.Add(-time.Hour)
	if got := code(inFlight); got != "idempotency_unfinished" {
		t.Error(got)
	}
}

package ibkr_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/adapters/ibkr"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/internal/fakeibkr"
)

func domainOrder(t *testing.T, symbol, qty string) domain.OrderRequest {
	t.Helper()
	o, err := domain.NewOrderRequest("IBKR", symbol, "BUY", qty, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func wantCode(t *testing.T, err error, code string, kind domain.Kind) {
	t.Helper()
	var e *domain.Error
	if !errors.As(err, &e) || e.Code != code || e.Kind != kind {
		t.Fatalf("err = %v, want %s (%s)", err, code, kind)
	}
}

// The bridge over the simulator: a price, no filters, a preview in IBKR's
// shape, and an unknown symbol as bad input.
func TestBridgeOverTheSimulator(t *testing.T) {
	b := ibkr.NewBridge(ibkr.NewSimulator())
	ctx := context.Background()
	if b.Mode() != domain.TestOrderModeSimulated {
		t.Fatal(b.Mode())
	}
	if p, err := b.ReferencePrice(ctx, "AAPL"); err != nil || p.String() != "230" {
		t.Fatalf("%v %v", p, err)
	}
	if f, err := b.SymbolFilters(ctx, "AAPL"); err != nil || f.LotSize != nil || f.Notional != nil {
		t.Fatalf("%+v %v", f, err)
	}
	raw, err := b.WhatIf(ctx, domain.NewSecret("DUSIM0000"), domainOrder(t, "AAPL", "10"))
	var p map[string]any
	if err != nil || json.Unmarshal(raw, &p) != nil || p["conid"] != "265598" || p["amount"] == nil || p["warn"] != "" || p["error"] != "" {
		t.Fatalf("%s %v", raw, err)
	}
	_, err = b.ReferencePrice(ctx, "GOOGL")
	wantCode(t, err, "unknown_symbol", domain.KindInvalid)
	// More margin than the simulated account has: IBKR's rejection.
	_, err = b.WhatIf(ctx, domain.NewSecret("DUSIM0000"), domainOrder(t, "AAPL", "100000"))
	wantCode(t, err, "ibkr_rejected", domain.KindUpstream)
}

// The bridge over a gateway classifies IBKR's answers: a what-if error is
// a rejection carrying IBKR's wording (exchange_code "rejected"), a lost
// session "not_authenticated", a 5xx or a timeout an unknown outcome (502,
// 504), a live account without AllowLive a refusal with nothing sent.
func TestBridgeOverAGateway(t *testing.T) {
	fake := fakeibkr.StartTLS(t)
	g := newGateway(t, ibkr.Config{BaseURL: fake.URL(), InsecureTLS: true, Timeout: 300 * time.Millisecond})
	b := ibkr.NewBridge(g)
	ctx := context.Background()
	account := domain.NewSecret(fakeibkr.PaperAccount)
	order := domainOrder(t, "AAPL", "1")
	if b.Mode() != domain.TestOrderModePaper {
		t.Fatal(b.Mode())
	}
	if _, err := b.WhatIf(ctx, account, order); err != nil {
		t.Fatal(err)
	}
	exchangeErr := func(err error) *domain.ExchangeError {
		t.Helper()
		var xe *domain.ExchangeError
		if !errors.As(err, &xe) {
			t.Fatalf("not an exchange error: %v", err)
		}
		return xe
	}

	fake.RejectWhatIf("Order rejected for account " + fakeibkr.PaperAccount + ": price too far from market")
	_, err := b.WhatIf(ctx, account, order)
	wantCode(t, err, "ibkr_rejected", domain.KindUpstream)
	if xe := exchangeErr(err); xe.Code.String() != "rejected" || strings.Contains(xe.Message, fakeibkr.PaperAccount) || !strings.Contains(xe.Message, "too far") {
		t.Fatalf("%+v", xe)
	}
	fake.RejectWhatIf("")

	fake.Fail(fakeibkr.WhatIf, http.StatusUnauthorized)
	_, err = b.WhatIf(ctx, account, order)
	if xe := exchangeErr(err); xe.Code.String() != "not_authenticated" || xe.Outcome != domain.TestOrderRejected {
		t.Fatalf("401: %+v", xe)
	}
	fake.Fail(fakeibkr.WhatIf, http.StatusInternalServerError)
	_, err = b.WhatIf(ctx, account, order)
	wantCode(t, err, "ibkr_unknown", domain.KindUpstream)
	fake.Fail(fakeibkr.WhatIf, 0)

	fake.Delay(fakeibkr.WhatIf, time.Second)
	_, err = b.WhatIf(ctx, account, order)
	wantCode(t, err, "ibkr_unknown", domain.KindUpstreamTimeout)
	if xe := exchangeErr(err); xe.Outcome != domain.TestOrderUnknown {
		t.Fatalf("timeout: %+v", xe)
	}
	fake.Delay(fakeibkr.WhatIf, 0)

	before := fake.Calls(fakeibkr.WhatIf)
	_, err = b.WhatIf(ctx, domain.NewSecret("U7654321"), order)
	wantCode(t, err, "ibkr_refused", domain.KindUnprocessable)
	if fake.Calls(fakeibkr.WhatIf) != before {
		t.Fatal("a live account was previewed")
	}

	fake.Fail(fakeibkr.Snapshot, http.StatusServiceUnavailable)
	_, err = b.ReferencePrice(ctx, "MSFT")
	wantCode(t, err, "ibkr_unavailable", domain.KindUpstream)
}

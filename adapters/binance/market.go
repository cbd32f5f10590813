package binance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/shopspring/decimal"
)

// SymbolRules are a symbol's trading status and the exchange filters the
// risk checks apply. Binance disables a rule by setting it to 0, so a zero
// value — or an absent filter, which parses to zeros — means "no limit".
type SymbolRules struct {
	Symbol         string
	Status         string // "TRADING" when orders are accepted
	BaseAsset      string
	QuoteAsset     string
	BasePrecision  int // decimals allowed in a quantity
	QuotePrecision int // decimals allowed in a price
	OrderTypes     []string
	PriceFilter    PriceFilter
	LotSize        LotSize // every order
	MarketLotSize  LotSize // MARKET orders, in addition to LotSize
	Notional       Notional
}

// PriceFilter is PRICE_FILTER: minPrice ≤ price ≤ maxPrice and
// (price − minPrice) a multiple of tickSize.
type PriceFilter struct{ MinPrice, MaxPrice, TickSize decimal.Decimal }

// LotSize is LOT_SIZE or MARKET_LOT_SIZE: minQty ≤ qty ≤ maxQty and
// (qty − minQty) a multiple of stepSize.
type LotSize struct{ MinQty, MaxQty, StepSize decimal.Decimal }

// Notional is NOTIONAL, or the older MIN_NOTIONAL mapped onto it (its
// applyToMarket becomes ApplyMinToMarket; it has no maximum). Filter is the
// name Binance reports in "Filter failure: ...". MARKET orders are checked
// against the average price of the last AvgPriceMins minutes.
type Notional struct {
	Filter                             string // "NOTIONAL", "MIN_NOTIONAL" or "" when absent
	MinNotional, MaxNotional           decimal.Decimal
	ApplyMinToMarket, ApplyMaxToMarket bool
	AvgPriceMins                       int
}

// validSymbol is Binance's own pattern for the symbol parameter.
var validSymbol = regexp.MustCompile(`^[A-Z0-9-_.]{1,20}$`)

func checkSymbol(symbol string) error {
	if !validSymbol.MatchString(symbol) {
		return fmt.Errorf("%w: %q is not of the form %s", ErrInvalidSymbol, symbol, validSymbol)
	}
	return nil
}

// SymbolRules returns symbol's rules from GET /api/v3/exchangeInfo, cached
// for RulesTTL; concurrent callers share one request. An unknown symbol is
// an error matching ErrInvalidSymbol.
func (c *Client) SymbolRules(ctx context.Context, symbol string) (SymbolRules, error) {
	if err := checkSymbol(symbol); err != nil {
		return SymbolRules{}, err
	}
	r, err := cached(ctx, c, &c.rules, "rules", symbol, func(ctx context.Context) (SymbolRules, error) {
		return c.fetchRules(ctx, symbol)
	})
	// The cached value is shared: hand out a slice the caller may modify.
	r.OrderTypes = slices.Clone(r.OrderTypes)
	return r, err
}

type rawFilter struct {
	FilterType                                        string
	MinPrice, MaxPrice, TickSize                      decimal.Decimal
	MinQty, MaxQty, StepSize                          decimal.Decimal
	MinNotional, MaxNotional                          decimal.Decimal
	ApplyToMarket, ApplyMinToMarket, ApplyMaxToMarket bool
	AvgPriceMins                                      int
}

func (c *Client) fetchRules(ctx context.Context, symbol string) (SymbolRules, error) {
	r, err := c.do(ctx, http.MethodGet, "/api/v3/exchangeInfo", "symbol="+url.QueryEscape(symbol), "", "")
	if err != nil {
		return SymbolRules{}, err
	}
	var info struct {
		Symbols []struct {
			Symbol              string
			Status              string
			BaseAsset           string
			BaseAssetPrecision  int
			QuoteAsset          string
			QuoteAssetPrecision int
			OrderTypes          []string
			Filters             []rawFilter
		}
	}
	if err := json.Unmarshal(r.body, &info); err != nil {
		return SymbolRules{}, &APIError{Outcome: OutcomeUnknown, Message: "unexpected exchangeInfo response", cause: err}
	}
	for _, s := range info.Symbols {
		if s.Symbol != symbol {
			continue
		}
		rules := SymbolRules{
			Symbol: s.Symbol, Status: s.Status, BaseAsset: s.BaseAsset, QuoteAsset: s.QuoteAsset,
			BasePrecision: s.BaseAssetPrecision, QuotePrecision: s.QuoteAssetPrecision, OrderTypes: s.OrderTypes,
		}
		for _, f := range s.Filters {
			switch f.FilterType {
			case "PRICE_FILTER":
				rules.PriceFilter = PriceFilter{MinPrice: f.MinPrice, MaxPrice: f.MaxPrice, TickSize: f.TickSize}
			case "LOT_SIZE":
				rules.LotSize = LotSize{MinQty: f.MinQty, MaxQty: f.MaxQty, StepSize: f.StepSize}
			case "MARKET_LOT_SIZE":
				rules.MarketLotSize = LotSize{MinQty: f.MinQty, MaxQty: f.MaxQty, StepSize: f.StepSize}
			case "NOTIONAL":
				rules.Notional = Notional{Filter: f.FilterType, MinNotional: f.MinNotional, MaxNotional: f.MaxNotional,
					ApplyMinToMarket: f.ApplyMinToMarket, ApplyMaxToMarket: f.ApplyMaxToMarket, AvgPriceMins: f.AvgPriceMins}
			case "MIN_NOTIONAL":
				rules.Notional = Notional{Filter: f.FilterType, MinNotional: f.MinNotional,
					ApplyMinToMarket: f.ApplyToMarket, AvgPriceMins: f.AvgPriceMins}
			}
		}
		return rules, nil
	}
	return SymbolRules{}, &APIError{Outcome: OutcomeUnknown, Message: fmt.Sprintf("exchangeInfo has no entry for %s", symbol)}
}

// Price returns the last price of symbol from GET /api/v3/ticker/price,
// cached for PriceTTL; concurrent callers share one request.
func (c *Client) Price(ctx context.Context, symbol string) (decimal.Decimal, error) {
	if err := checkSymbol(symbol); err != nil {
		return decimal.Decimal{}, err
	}
	return cached(ctx, c, &c.prices, "price", symbol, func(ctx context.Context) (decimal.Decimal, error) {
		r, err := c.do(ctx, http.MethodGet, "/api/v3/ticker/price", "symbol="+url.QueryEscape(symbol), "", "")
		if err != nil {
			return decimal.Decimal{}, err
		}
		var t struct {
			Symbol string
			Price  decimal.Decimal
		}
		if err := json.Unmarshal(r.body, &t); err != nil || t.Symbol != symbol || !t.Price.IsPositive() {
			return decimal.Decimal{}, &APIError{Outcome: OutcomeUnknown, Message: "unexpected ticker/price response"}
		}
		return t.Price, nil
	})
}

// ttlCache holds values per key until their time is up.
type ttlCache[T any] struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]ttlEntry[T]
}

type ttlEntry[T any] struct {
	v       T
	expires time.Time
}

func (tc *ttlCache[T]) get(key string, now time.Time) (T, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	e, ok := tc.m[key]
	if !ok || !now.Before(e.expires) {
		var zero T
		return zero, false
	}
	return e.v, true
}

func (tc *ttlCache[T]) put(key string, v T, now time.Time) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.m == nil {
		tc.m = make(map[string]ttlEntry[T])
	}
	tc.m[key] = ttlEntry[T]{v: v, expires: now.Add(tc.ttl)}
}

// cached serves key from tc, or fetches it once for all concurrent callers.
// The fetch is detached from the first caller's cancellation (do bounds it
// with the client's timeout) so that caller giving up does not fail the
// others; each caller still stops waiting when its own ctx ends. Errors are
// not cached.
func cached[T any](ctx context.Context, c *Client, tc *ttlCache[T], kind, key string, fetch func(context.Context) (T, error)) (T, error) {
	if v, ok := tc.get(key, c.clock()); ok {
		return v, nil
	}
	ch := c.flight.DoChan(kind+"/"+key, func() (any, error) {
		// A flight that finished just before this one started has filled it.
		if v, ok := tc.get(key, c.clock()); ok {
			return v, nil
		}
		v, err := fetch(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		tc.put(key, v, c.clock())
		return v, nil
	})
	var zero T
	select {
	case res := <-ch:
		if res.Err != nil {
			return zero, res.Err
		}
		return res.Val.(T), nil
	case <-ctx.Done():
		return zero, &APIError{Outcome: OutcomeUnknown, Message: "gave up waiting for " + kind, cause: ctx.Err()}
	}
}

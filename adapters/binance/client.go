// Package binance is a small client for the Binance Spot REST endpoints
// tradeops uses: exchangeInfo and ticker/price (cached), server time, and the
// signed, non-destructive POST /api/v3/order/test. It never calls the
// order-placing endpoint. Quantities and prices are decimals end to end.
package binance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
	"golang.org/x/sync/singleflight"
)

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	// BaseURL, e.g. https://testnet.binance.vision (no trailing /api).
	BaseURL string
	// HTTPClient defaults to a pooled client; Timeout applies either way.
	HTTPClient *http.Client
	// Timeout bounds each HTTP request (default 5 s).
	Timeout time.Duration
	// RecvWindow is sent with signed requests (default 5 s, at most 60 s).
	RecvWindow time.Duration
	// Clock is the local clock (default time.Now): timestamps and cache expiry.
	Clock func() time.Time
	// RulesTTL: how long exchangeInfo per symbol is cached (default 5 min).
	RulesTTL time.Duration
	// PriceTTL: how long a ticker price is cached (default 2 s).
	PriceTTL time.Duration
}

// Client is safe for concurrent use.
type Client struct {
	base       string
	http       *http.Client
	timeout    time.Duration
	recvWindow int64 // ms
	clock      func() time.Time
	offsetMS   atomic.Int64 // server time minus local time, learnt on -1021

	flight singleflight.Group
	rules  ttlCache[SymbolRules]
	prices ttlCache[decimal.Decimal]

	mu      sync.Mutex
	backoff *APIError // the last 429/418, while its Retry-After runs
	until   time.Time
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("binance: base URL %q must be an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.RecvWindow == 0 {
		cfg.RecvWindow = 5 * time.Second
	}
	if cfg.RecvWindow < time.Millisecond || cfg.RecvWindow > time.Minute {
		return nil, fmt.Errorf("binance: recvWindow %s must be between 1 ms and 60 s", cfg.RecvWindow)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.RulesTTL <= 0 {
		cfg.RulesTTL = 5 * time.Minute
	}
	if cfg.PriceTTL <= 0 {
		cfg.PriceTTL = 2 * time.Second
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// The default of 2 idle connections per host churns TCP connections
		// at a hundred test orders per second.
		tr.MaxIdleConnsPerHost = 32
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	return &Client{
		base:       strings.TrimRight(cfg.BaseURL, "/"),
		http:       cfg.HTTPClient,
		timeout:    cfg.Timeout,
		recvWindow: cfg.RecvWindow.Milliseconds(),
		clock:      cfg.Clock,
		rules:      ttlCache[SymbolRules]{ttl: cfg.RulesTTL},
		prices:     ttlCache[decimal.Decimal]{ttl: cfg.PriceTTL},
	}, nil
}

// maxBody bounds a response body; a single-symbol exchangeInfo is ~5 KiB.
const maxBody = 1 << 20

type response struct {
	body       []byte
	usedWeight int // X-MBX-USED-WEIGHT-1M, 0 when absent
}

// do sends one request. Every failure is an *APIError: no verdict from
// Binance (transport error, timeout, 5xx, unreadable 2xx) is OutcomeUnknown.
// While a Retry-After from an earlier 429/418 runs, nothing is sent.
func (c *Client) do(ctx context.Context, method, path, query, body, apiKey string) (response, error) {
	if err := c.withheld(); err != nil {
		return response{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.base + path
	if query != "" {
		target += "?" + query
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return response{}, fmt.Errorf("binance: building %s %s: %w", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if apiKey != "" {
		req.Header.Set("X-MBX-APIKEY", apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL in err holds no parameter of a signed request: those
		// travel in the body.
		return response{}, &APIError{Outcome: OutcomeUnknown, Message: "no response", cause: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return response{}, &APIError{HTTPStatus: resp.StatusCode, Outcome: OutcomeUnknown, Message: "reading the response", cause: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := classify(resp.StatusCode, resp.Header, data, c.clock())
		if e.Outcome == OutcomeRateLimited {
			c.holdOff(e)
		}
		return response{}, e
	}
	if !json.Valid(data) {
		return response{}, &APIError{HTTPStatus: resp.StatusCode, Outcome: OutcomeUnknown, Message: "the response is not JSON"}
	}
	w, _ := strconv.Atoi(resp.Header.Get("X-MBX-USED-WEIGHT-1M"))
	return response{body: data, usedWeight: w}, nil
}

// holdOff records a 429/418: Binance bans an IP that keeps sending after
// one, so every request waits out Retry-After.
func (c *Client) holdOff(e *APIError) {
	until := c.clock().Add(e.RetryAfter)
	c.mu.Lock()
	defer c.mu.Unlock()
	if until.After(c.until) {
		c.until, c.backoff = until, e
	}
}

func (c *Client) withheld() error {
	now := c.clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backoff == nil || !now.Before(c.until) {
		return nil
	}
	return &APIError{
		HTTPStatus: c.backoff.HTTPStatus,
		Code:       c.backoff.Code,
		Message:    fmt.Sprintf("not sent: Binance asked to wait until %s", c.until.UTC().Format(time.RFC3339)),
		RetryAfter: c.until.Sub(now).Round(time.Second),
		Outcome:    OutcomeRateLimited,
		NotSent:    true,
	}
}

// timestamp is the local clock corrected by the learnt server offset.
func (c *Client) timestamp() int64 { return c.clock().UnixMilli() + c.offsetMS.Load() }

// serverTime returns Binance's clock (GET /api/v3/time).
func (c *Client) serverTime(ctx context.Context) (time.Time, error) {
	r, err := c.do(ctx, http.MethodGet, "/api/v3/time", "", "", "")
	if err != nil {
		return time.Time{}, err
	}
	var t struct {
		ServerTime int64 `json:"serverTime"`
	}
	if err := json.Unmarshal(r.body, &t); err != nil || t.ServerTime == 0 {
		return time.Time{}, &APIError{Outcome: OutcomeUnknown, Message: "unexpected /api/v3/time response"}
	}
	return time.UnixMilli(t.ServerTime), nil
}

// syncTime learns the offset between Binance's clock and ours, measured
// against the midpoint of the round trip. Concurrent -1021s share one sync.
func (c *Client) syncTime(ctx context.Context) error {
	_, err, _ := c.flight.Do("time", func() (any, error) {
		before := c.clock()
		server, err := c.serverTime(ctx)
		if err != nil {
			return nil, err
		}
		after := c.clock()
		mid := before.Add(after.Sub(before) / 2)
		c.offsetMS.Store(server.UnixMilli() - mid.UnixMilli())
		return nil, nil
	})
	return err
}

// postSigned sends a signed POST with params (already encoded, in a fixed
// order) in the form body, followed by recvWindow, timestamp and signature.
// On -1021 it syncs with the server's clock and tries once more.
func (c *Client) postSigned(ctx context.Context, creds Credentials, path, params string) (response, error) {
	apiKey := creds.APIKey.Reveal()
	if apiKey == "" || creds.Secret.IsZero() {
		return response{}, fmt.Errorf("%w: API key and secret are required", ErrInvalidCredentials)
	}
	for _, r := range apiKey {
		if r <= ' ' || r > '~' {
			return response{}, fmt.Errorf("%w: the API key holds characters an HTTP header cannot carry", ErrInvalidCredentials)
		}
	}
	send := func() (response, error) {
		payload := fmt.Sprintf("%s&recvWindow=%d&timestamp=%d", params, c.recvWindow, c.timestamp())
		sig, err := sign(creds.Secret, payload)
		if err != nil {
			return response{}, err
		}
		return c.do(ctx, http.MethodPost, path, "", payload+"&signature="+sig, apiKey)
	}
	r, err := send()
	var e *APIError
	if errors.As(err, &e) && e.Code == CodeTimestampOutsideWindow {
		if serr := c.syncTime(ctx); serr != nil {
			return response{}, fmt.Errorf("%w (server time sync failed: %v)", err, serr)
		}
		return send()
	}
	return r, err
}

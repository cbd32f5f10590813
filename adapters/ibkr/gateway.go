package ibkr

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"
)

// Config configures a Gateway.
type Config struct {
	// BaseURL is the gateway's API root, e.g. https://localhost:5000/v1/api.
	BaseURL string
	// InsecureTLS accepts the gateway's self-signed certificate.
	InsecureTLS bool
	// Timeout bounds each HTTP request; 10 s when zero.
	Timeout time.Duration
	// AllowLive permits accounts that are not paper (DU...) accounts.
	AllowLive bool
}

// Gateway previews orders through an IBKR Client Portal Web API gateway.
// It only ever sends POST .../orders/whatif, never the order-placing
// endpoint, and does not follow redirects (a 307 would repeat the POST
// elsewhere). Safe for concurrent use.
type Gateway struct {
	base      string
	client    *http.Client
	timeout   time.Duration
	allowLive bool

	mu     sync.RWMutex
	conids map[string]int64 // symbol → conid; contracts do not change
}

const (
	defaultTimeout = 10 * time.Second
	maxBody        = 1 << 20
	// The first snapshot of a conid only subscribes; the price comes on a
	// later call. These are the waits between attempts.
	snapshotFirstWait = 100 * time.Millisecond
	snapshotAttempts  = 5
)

// NewGateway returns a client for the gateway at cfg.BaseURL.
func NewGateway(cfg Config) (*Gateway, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("ibkr: base URL must be an http(s) URL such as https://localhost:5000/v1/api")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// The Client Portal gateway serves a self-signed certificate; accepting
	// it is an explicit operator choice.
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureTLS}
	return &Gateway{
		base: strings.TrimRight(u.String(), "/"),
		client: &http.Client{
			Transport:     transport,
			Timeout:       cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:   cfg.Timeout,
		allowLive: cfg.AllowLive,
		conids:    map[string]int64{},
	}, nil
}

// Mode is "paper": the gateway previews against the account's own data.
func (*Gateway) Mode() string { return "paper" }

// ReferencePrice returns the last price of symbol (snapshot field 31). A
// previous close ("C" prefix, market closed) is a price; a halted symbol
// ("H" prefix) is Refused.
func (g *Gateway) ReferencePrice(ctx context.Context, symbol string) (decimal.Decimal, error) {
	if err := checkSymbol(symbol); err != nil {
		return decimal.Decimal{}, err
	}
	if _, err := g.session(ctx); err != nil {
		return decimal.Decimal{}, err
	}
	conid, err := g.conid(ctx, symbol)
	if err != nil {
		return decimal.Decimal{}, err
	}
	path := "/iserver/marketdata/snapshot?" + url.Values{"conids": {strconv.FormatInt(conid, 10)}, "fields": {"31"}}.Encode()
	wait := snapshotFirstWait
	for attempt := 1; ; attempt++ {
		var rows []map[string]json.RawMessage
		if err := g.getJSON(ctx, http.MethodGet, path, nil, &rows); err != nil {
			return decimal.Decimal{}, err
		}
		for _, row := range rows {
			if last, ok := row["31"]; ok && sameConid(row["conid"], conid) {
				return parseLast(symbol, text(last))
			}
		}
		if attempt == snapshotAttempts {
			return decimal.Decimal{}, errorf(Unknown, "the gateway sent no last price for %s", symbol)
		}
		select {
		case <-ctx.Done():
			return decimal.Decimal{}, &Error{Kind: Unknown, Message: "canceled while waiting for market data", Err: ctx.Err()}
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func sameConid(raw json.RawMessage, conid int64) bool {
	return text(raw) == strconv.FormatInt(conid, 10)
}

// parseLast reads field 31: "230.15", "C230.15" (previous close) or
// "H230.15" (halted).
func parseLast(symbol, s string) (decimal.Decimal, error) {
	halted := strings.HasPrefix(s, "H")
	s = strings.ReplaceAll(strings.TrimLeft(s, "CH"), ",", "")
	price, err := decimal.NewFromString(s)
	if err != nil || !price.IsPositive() {
		return decimal.Decimal{}, errorf(Unknown, "the gateway sent no usable last price for %s", symbol)
	}
	if halted {
		return decimal.Decimal{}, errorf(Refused, "trading in %s is halted", symbol)
	}
	return price, nil
}

// WhatIf previews o for accountID with POST
// /iserver/account/{accountId}/orders/whatif. A preview with an "error" is
// returned as a Rejected *Error carrying the preview.
func (g *Gateway) WhatIf(ctx context.Context, accountID string, o Order) (Preview, error) {
	p, err := g.whatIf(ctx, accountID, o)
	if e, ok := asError(err); ok && accountID != "" {
		// Gateway messages may name the account; it comes from the user's
		// stored secret and stays out of errors, logs and events.
		e.Message = strings.ReplaceAll(e.Message, accountID, "[account]")
	}
	return p, err
}

func (g *Gateway) whatIf(ctx context.Context, accountID string, o Order) (Preview, error) {
	if err := checkAccount(accountID); err != nil {
		return Preview{}, err
	}
	if !isPaper(accountID) && !g.allowLive {
		return Preview{}, errorf(Refused, "the IBKR account is not a paper (DU...) account and live trading is not enabled")
	}
	o, err := o.normalize()
	if err != nil {
		return Preview{}, err
	}
	accounts, err := g.session(ctx)
	if err != nil {
		return Preview{}, err
	}
	if !slices.Contains(accounts, accountID) {
		return Preview{}, errorf(NotFound, "the IBKR account is not one of the gateway's accounts")
	}
	conid, err := g.conid(ctx, o.Symbol)
	if err != nil {
		return Preview{}, err
	}
	req := whatIfOrder{Conid: conid, OrderType: "MKT", Side: o.Side, Quantity: json.Number(o.Quantity.String()), TIF: "DAY"}
	if o.Type == TypeLimit {
		req.OrderType, req.Price = "LMT", json.Number(o.Price.String())
	}
	raw, err := g.do(ctx, http.MethodPost, "/iserver/account/"+url.PathEscape(accountID)+"/orders/whatif", whatIfRequest{Orders: []whatIfOrder{req}})
	if err != nil {
		return Preview{}, err
	}
	p, err := decodePreview(raw, strconv.FormatInt(conid, 10), o.Symbol)
	if err != nil {
		return Preview{}, &Error{Kind: Unknown, Message: "unreadable what-if answer from the gateway", HTTPStatus: http.StatusOK, Err: err}
	}
	if p.Error != "" {
		return Preview{}, &Error{Kind: Rejected, Message: p.Error, HTTPStatus: http.StatusOK, Preview: &p}
	}
	return p, nil
}

type whatIfRequest struct {
	Orders []whatIfOrder `json:"orders"`
}

type whatIfOrder struct {
	Conid     int64       `json:"conid"`
	OrderType string      `json:"orderType"`
	Side      string      `json:"side"`
	Quantity  json.Number `json:"quantity"`
	TIF       string      `json:"tif"`
	Price     json.Number `json:"price,omitempty"`
}

// Tickle keeps the gateway's session alive (IBKR ends it after a few idle
// minutes); call it about once a minute. It reports NotAuthenticated when the
// brokerage session is gone.
func (g *Gateway) Tickle(ctx context.Context) error {
	var t struct {
		Iserver struct {
			AuthStatus authStatus `json:"authStatus"`
		} `json:"iserver"`
	}
	if err := g.getJSON(ctx, http.MethodPost, "/tickle", nil, &t); err != nil {
		return err
	}
	return t.Iserver.AuthStatus.check()
}

type authStatus struct {
	Authenticated bool   `json:"authenticated"`
	Competing     bool   `json:"competing"`
	Connected     bool   `json:"connected"`
	Message       string `json:"message"`
}

func (s authStatus) check() error {
	switch {
	case !s.Connected:
		return errorf(Unknown, "the gateway is not connected to IBKR")
	case !s.Authenticated:
		return errorf(NotAuthenticated, "the gateway has no authenticated IBKR session; log in through the gateway")
	case s.Competing:
		return errorf(NotAuthenticated, "another IBKR session competes with the gateway's; log in again through the gateway")
	}
	return nil
}

// session checks the brokerage session and returns the gateway's accounts.
// IBKR requires GET /iserver/accounts before order and market-data calls in
// every session; calling it each time survives a gateway re-login.
func (g *Gateway) session(ctx context.Context) ([]string, error) {
	var status authStatus
	if err := g.getJSON(ctx, http.MethodPost, "/iserver/auth/status", nil, &status); err != nil {
		return nil, err
	}
	if err := status.check(); err != nil {
		return nil, err
	}
	var accounts struct {
		Accounts []string `json:"accounts"`
	}
	if err := g.getJSON(ctx, http.MethodGet, "/iserver/accounts", nil, &accounts); err != nil {
		return nil, err
	}
	return accounts.Accounts, nil
}

// conid resolves symbol to its stock contract id, once per symbol.
func (g *Gateway) conid(ctx context.Context, symbol string) (int64, error) {
	g.mu.RLock()
	conid, ok := g.conids[symbol]
	g.mu.RUnlock()
	if ok {
		return conid, nil
	}
	raw, err := g.do(ctx, http.MethodGet, "/iserver/secdef/search?"+url.Values{"symbol": {symbol}}.Encode(), nil)
	if err != nil {
		return 0, err
	}
	conid, err = stockConid(raw, symbol)
	if err != nil {
		return 0, err
	}
	g.mu.Lock()
	g.conids[symbol] = conid
	g.mu.Unlock()
	return conid, nil
}

// stockConid picks the contract of symbol that has a STK section from a
// secdef search answer: an array of contracts, or {"error": "..."} when IBKR
// knows no such symbol.
func stockConid(raw []byte, symbol string) (int64, error) {
	var contracts []struct {
		Conid    json.RawMessage `json:"conid"` // a string in the docs, a number in some versions
		Symbol   string          `json:"symbol"`
		Sections []section       `json:"sections"`
	}
	if err := json.Unmarshal(raw, &contracts); err != nil {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return 0, errorf(NotFound, "no IBKR stock contract for %s: %s", symbol, e.Error)
		}
		return 0, &Error{Kind: Unknown, Message: "unreadable contract search answer from the gateway", HTTPStatus: http.StatusOK, Err: err}
	}
	for _, c := range contracts {
		if !strings.EqualFold(c.Symbol, symbol) || !slices.ContainsFunc(c.Sections, section.isStock) {
			continue
		}
		if conid, err := strconv.ParseInt(text(c.Conid), 10, 64); err == nil && conid > 0 {
			return conid, nil
		}
	}
	return 0, errorf(NotFound, "no IBKR stock contract for %s", symbol)
}

type section struct {
	SecType string `json:"secType"`
}

func (s section) isStock() bool { return s.SecType == "STK" }

func (g *Gateway) getJSON(ctx context.Context, method, path string, body, out any) error {
	raw, err := g.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &Error{Kind: Unknown, Message: "unreadable answer from the gateway", HTTPStatus: http.StatusOK, Err: err}
	}
	return nil
}

// do sends one request and returns the body of a 2xx answer; any other
// outcome is an *Error classified by status.
func (g *Gateway) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, reader)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	// Names the caller in the gateway's logs.
	req.Header.Set("User-Agent", "tradeops-ibkr/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, g.transportError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &Error{Kind: Unknown, Message: "reading the gateway's answer failed", HTTPStatus: resp.StatusCode, Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return raw, nil
	}
	msg := gatewayMessage(raw, resp.StatusCode)
	e := &Error{Message: msg, HTTPStatus: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		e.Kind, e.Message = NotAuthenticated, "the gateway has no authenticated IBKR session ("+msg+"); log in through the gateway"
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		e.Kind = Rejected
	default: // 5xx: IBKR may or may not have acted; 3xx: not a gateway answer
		e.Kind, e.Message = Unknown, fmt.Sprintf("the gateway answered %d: %s", resp.StatusCode, msg)
	}
	return nil, e
}

// gatewayMessage extracts IBKR's {"error": "...", "statusCode": N} text.
func gatewayMessage(raw []byte, status int) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil {
		if msg := text(e.Error); msg != "" {
			const limit = 300
			if len(msg) > limit {
				msg = msg[:limit] + "..."
			}
			return msg
		}
	}
	return http.StatusText(status)
}

// transportError classifies a request that got no answer. The URL (which
// holds the account id) is left out of the message.
func (g *Gateway) transportError(err error) *Error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case errors.As(err, &certErr):
		return &Error{Kind: Unknown, Err: cause, Message: "the gateway's TLS certificate is not trusted (" + certErr.Err.Error() +
			"); the Client Portal gateway's own certificate is self-signed: enable insecure TLS (IBKR_BRIDGE_INSECURE_TLS) to accept it"}
	case errors.Is(err, context.Canceled):
		return &Error{Kind: Unknown, Err: cause, Message: "the request to the gateway was canceled"}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &Error{Kind: Unknown, Err: cause, Message: "the gateway did not answer in time (timeout " + g.timeout.String() + ")"}
	}
	return &Error{Kind: Unknown, Err: cause, Message: "the gateway is unreachable: " + cause.Error()}
}

// Package fakebinance is an in-process Binance Spot REST server for tests:
// GET /api/v3/time, /api/v3/exchangeInfo, /api/v3/ticker/price and the
// signed POST /api/v3/order/test, with Binance's checks, error codes and
// shapes (docs/ARCHITECTURE.md, "Binance client"). Faults are switched on
// per test: rate limiting (429/418 with Retry-After), 5xx, latency, a skewed
// server clock. It counts what it receives, so a test can assert that
// nothing was sent; the order-placing POST /api/v3/order is refused and
// fails the test.
package fakebinance

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	// T, when set, fails the test on any call to POST /api/v3/order and
	// closes the server at the test's cleanup.
	T testing.TB
	// Symbols listed and tradable (default DefaultSymbols()).
	Symbols []Symbol
	// Clock is the server's clock before SetClockOffset (default time.Now).
	Clock func() time.Time
}

// Server is a running fake. All methods are safe for concurrent use.
type Server struct {
	ts    *httptest.Server
	tb    testing.TB
	clock func() time.Time

	mu       sync.Mutex
	symbols  map[string]symbol
	listing  []string // symbol names in the order given
	prices   map[string]decimal.Decimal
	keys     map[string]apiKey
	offset   time.Duration
	fault    int // HTTP status every request gets; 0 = none
	retry    time.Duration
	latency  time.Duration
	counts   map[string]int
	accepted int
	minute   int64 // the minute weightUsed counts
	weight   int
}

// apiKey is a registered key: an HMAC secret or an Ed25519 public key.
type apiKey struct {
	hmacSecret []byte
	ed25519    ed25519.PublicKey
}

// New starts a server.
func New(opts Options) *Server {
	if opts.Symbols == nil {
		opts.Symbols = DefaultSymbols()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Server{
		tb: opts.T, clock: opts.Clock,
		symbols: map[string]symbol{}, prices: map[string]decimal.Decimal{},
		keys: map[string]apiKey{}, counts: map[string]int{},
	}
	for _, sym := range opts.Symbols {
		if sym.Status == "" {
			sym.Status = "TRADING"
		}
		s.symbols[sym.Symbol] = parseSymbol(sym)
		s.listing = append(s.listing, sym.Symbol)
		s.prices[sym.Symbol] = dec(sym.Price)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v3/time", s.serverTime)
	mux.HandleFunc("GET /api/v3/exchangeInfo", s.exchangeInfo)
	mux.HandleFunc("GET /api/v3/ticker/price", s.tickerPrice)
	mux.HandleFunc("POST /api/v3/order/test", s.orderTest)
	mux.HandleFunc("/api/v3/order", s.orderPlace)
	s.ts = httptest.NewServer(s.middleware(mux))
	if s.tb != nil {
		s.tb.Cleanup(s.Close)
	}
	return s
}

// URL is the base URL to give a client (no trailing slash).
func (s *Server) URL() string { return s.ts.URL }

// Close stops the server; it is idempotent.
func (s *Server) Close() { s.ts.Close() }

// AddHMACKey registers an API key whose requests are signed with HMAC-SHA256
// under secret. Binance API keys are 64 letters and digits; a key of another
// form is answered with -2014 whether registered or not.
func (s *Server) AddHMACKey(key, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = apiKey{hmacSecret: []byte(secret)}
}

// AddEd25519Key registers an API key whose requests are signed with the
// Ed25519 private key matching pub.
func (s *Server) AddEd25519Key(key string, pub ed25519.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = apiKey{ed25519: pub}
}

// SetPrice sets symbol's ticker price (also the average price MARKET
// notional checks use).
func (s *Server) SetPrice(symbol, price string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prices[symbol] = dec(price)
}

// SetClockOffset moves the server's clock by d relative to the Clock
// option: a client that has not synced then gets -1021.
func (s *Server) SetClockOffset(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset = d
}

// SetLatency delays every response by d (or until the client gives up).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetFault makes every request fail with status until ClearFault: 429 and
// 418 as Binance's rate limiter (code -1003, Retry-After: retryAfter in
// whole seconds), any other status with Binance's internal error -1001.
func (s *Server) SetFault(status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.retry = status, retryAfter
}

// ClearFault ends SetFault.
func (s *Server) ClearFault() { s.SetFault(0, 0) }

// Count is how many requests arrived for path (any method, any outcome).
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// AcceptedTestOrders is how many test orders passed every check.
func (s *Server) AcceptedTestOrders() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// maxBody bounds a request body; Binance's parameters are a few hundred bytes.
const maxBody = 64 << 10

// now is the server's clock; s.mu held.
func (s *Server) now() time.Time { return s.clock().Add(s.offset) }

// middleware counts, delays and injects faults before any route runs.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.URL.Path]++
		latency, fault, retry := s.latency, s.fault, s.retry
		s.mu.Unlock()
		if latency > 0 {
			// With the body read, net/http notices a client hanging up and
			// cancels r.Context(), so a timed-out client frees the handler.
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			t := time.NewTimer(latency)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case fault == http.StatusTooManyRequests:
			s.charge(w, 1)
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
			writeError(w, fault, -1003, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")
		case fault == http.StatusTeapot:
			s.charge(w, 1)
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
			until := s.clock().Add(retry).UnixMilli()
			writeError(w, fault, -1003, "Way too much request weight used; IP banned until "+strconv.FormatInt(until, 10)+". Please use WebSocket Streams for live updates to avoid bans.")
		case fault != 0:
			writeError(w, fault, -1001, "Internal error; unable to process your request. Please try again.")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// charge adds a request's weight to the current minute and reports the
// total in X-MBX-USED-WEIGHT-1M, as Binance does on every response.
func (s *Server) charge(w http.ResponseWriter, weight int) {
	s.mu.Lock()
	minute := s.now().Unix() / 60
	if minute != s.minute {
		s.minute, s.weight = minute, 0
	}
	s.weight += weight
	used := s.weight
	s.mu.Unlock()
	w.Header().Set("X-MBX-USED-WEIGHT-1M", strconv.Itoa(used))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the fake's own maps and slices always marshal
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "msg": msg})
}

func (s *Server) serverTime(w http.ResponseWriter, _ *http.Request) {
	s.charge(w, 1)
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]int64{"serverTime": now.UnixMilli()})
}

// symbolPattern is the legal range Binance states for the symbol parameter.
var symbolPattern = regexp.MustCompile(`^[A-Z0-9-_.]{1,20}$`)

// lookup resolves a symbol parameter or writes Binance's error for it.
func (s *Server) lookup(w http.ResponseWriter, name string) (symbol, bool) {
	if !symbolPattern.MatchString(name) {
		writeError(w, http.StatusBadRequest, -1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.")
		return symbol{}, false
	}
	s.mu.Lock()
	sym, ok := s.symbols[name]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusBadRequest, -1121, "Invalid symbol.")
	}
	return sym, ok
}

func (s *Server) exchangeInfo(w http.ResponseWriter, r *http.Request) {
	s.charge(w, 20)
	var entries []map[string]any
	if name := r.URL.Query().Get("symbol"); name != "" {
		sym, ok := s.lookup(w, name)
		if !ok {
			return
		}
		entries = append(entries, sym.info())
	} else {
		s.mu.Lock()
		for _, name := range s.listing {
			entries = append(entries, s.symbols[name].info())
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"timezone":   "UTC",
		"serverTime": now.UnixMilli(),
		"rateLimits": []map[string]any{
			{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
			{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
			{"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
		},
		"exchangeFilters": []any{},
		"symbols":         entries,
	})
}

func (s *Server) tickerPrice(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("symbol")
	if name == "" {
		s.charge(w, 4)
		s.mu.Lock()
		all := make([]map[string]string, 0, len(s.listing))
		for _, n := range s.listing {
			all = append(all, map[string]string{"symbol": n, "price": fixed8(s.prices[n])})
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, all)
		return
	}
	s.charge(w, 2)
	if _, ok := s.lookup(w, name); !ok {
		return
	}
	s.mu.Lock()
	p := s.prices[name]
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"symbol": name, "price": fixed8(p)})
}

// orderPlace refuses the order-placing endpoint: tradeops must never call
// it, so a call fails the test (Options.T) besides being counted.
func (s *Server) orderPlace(w http.ResponseWriter, r *http.Request) {
	if s.tb != nil {
		s.tb.Errorf("fakebinance: %s /api/v3/order called: tradeops must only ever send test orders", r.Method)
	}
	writeError(w, http.StatusForbidden, -1020, "fakebinance: the order-placing endpoint is forbidden to tradeops; use /api/v3/order/test.")
}

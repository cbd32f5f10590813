package fakebinance

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// apiKeyPattern: Binance API keys are 64 letters and digits.
var apiKeyPattern = regexp.MustCompile(`^[A-Za-z0-9]{64}$`)

// decimalPattern is the legal range Binance states for quantity and price.
const decimalPattern = `^([0-9]{1,20})(\.[0-9]{1,20})?$`

var decimalRE = regexp.MustCompile(decimalPattern)

// rejection is a Binance error answer.
type rejection struct {
	status, code int
	msg          string
}

func badRequest(code int, msg string) *rejection {
	return &rejection{status: http.StatusBadRequest, code: code, msg: msg}
}

func mandatory(name string) *rejection {
	return badRequest(-1102, "Mandatory parameter '"+name+"' was not sent, was empty/null, or malformed.")
}

// orderTest is POST /api/v3/order/test: authentication (API key, timestamp
// within recvWindow, signature over query string + body), then the order's
// parameters and the symbol's filters. Nothing is ever "executed".
func (s *Server) orderTest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return
	}
	query, qerr := url.ParseQuery(r.URL.RawQuery)
	form, ferr := url.ParseQuery(string(body))
	if qerr != nil || ferr != nil {
		s.charge(w, 1)
		writeError(w, http.StatusBadRequest, -1100, "Illegal characters found in a parameter.")
		return
	}
	// A parameter sent in both places takes the query string's value.
	params := map[string]string{}
	for _, vs := range []url.Values{form, query} {
		for k, v := range vs {
			params[k] = v[0]
		}
	}
	weight := 1
	if params["computeCommissionRates"] == "true" {
		weight = 20
	}
	s.charge(w, weight)
	if rej := s.authenticate(r, params, signedPayload(r.URL.RawQuery, string(body))); rej != nil {
		writeError(w, rej.status, rej.code, rej.msg)
		return
	}
	if rej := s.checkOrder(params); rej != nil {
		writeError(w, rej.status, rej.code, rej.msg)
		return
	}
	s.mu.Lock()
	s.accepted++
	s.mu.Unlock()
	if weight == 1 {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	rates := map[string]string{"maker": "0.00100000", "taker": "0.00100000"}
	writeJSON(w, http.StatusOK, map[string]any{
		"standardCommissionForOrder": rates,
		"specialCommissionForOrder":  map[string]string{"maker": "0.00000000", "taker": "0.00000000"},
		"taxCommissionForOrder":      map[string]string{"maker": "0.00000000", "taker": "0.00000000"},
		"discount": map[string]any{
			"enabledForAccount": true, "enabledForSymbol": true, "discountAsset": "BNB", "discount": "0.25000000",
		},
	})
}

// signedPayload is what Binance signs: the query string without the
// signature parameter, followed with no separator by the body without it.
func signedPayload(rawQuery, body string) string {
	strip := func(raw string) string {
		var kept []string
		for _, part := range strings.Split(raw, "&") {
			if part != "" && !strings.HasPrefix(part, "signature=") {
				kept = append(kept, part)
			}
		}
		return strings.Join(kept, "&")
	}
	return strip(rawQuery) + strip(body)
}

func (s *Server) authenticate(r *http.Request, p map[string]string, payload string) *rejection {
	name := r.Header.Get("X-MBX-APIKEY")
	if !apiKeyPattern.MatchString(name) {
		return &rejection{status: http.StatusUnauthorized, code: -2014, msg: "API-key format invalid."}
	}
	s.mu.Lock()
	key, known := s.keys[name]
	serverMS := s.now().UnixMilli()
	s.mu.Unlock()
	if !known {
		return &rejection{status: http.StatusUnauthorized, code: -2015, msg: "Invalid API-key, IP, or permissions for action."}
	}
	ts, err := strconv.ParseInt(p["timestamp"], 10, 64)
	if err != nil || ts <= 0 {
		return mandatory("timestamp")
	}
	if p["signature"] == "" {
		return mandatory("signature")
	}
	recvWindow := int64(5000)
	if v, ok := p["recvWindow"]; ok {
		if recvWindow, err = strconv.ParseInt(v, 10, 64); err != nil || recvWindow <= 0 {
			return mandatory("recvWindow")
		}
		if recvWindow > 60000 {
			return badRequest(-1131, "recvWindow must be less than 60000")
		}
	}
	if ts >= serverMS+1000 {
		return badRequest(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
	}
	if serverMS-ts > recvWindow {
		return badRequest(-1021, "Timestamp for this request is outside of the recvWindow.")
	}
	if !key.verify(payload, p["signature"]) {
		return badRequest(-1022, "Signature for this request is not valid.")
	}
	return nil
}

// verify checks sig (already percent-decoded): lowercase-or-upper hex
// HMAC-SHA256, or base64 Ed25519.
func (k apiKey) verify(payload, sig string) bool {
	if k.ed25519 != nil {
		raw, err := base64.StdEncoding.DecodeString(sig)
		return err == nil && ed25519.Verify(k.ed25519, []byte(payload), raw)
	}
	raw, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, k.hmacSecret)
	mac.Write([]byte(payload))
	return hmac.Equal(raw, mac.Sum(nil))
}

// checkOrder validates a LIMIT or MARKET order as Binance does.
func (s *Server) checkOrder(p map[string]string) *rejection {
	name := p["symbol"]
	if name == "" {
		return mandatory("symbol")
	}
	if !symbolPattern.MatchString(name) {
		return badRequest(-1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.")
	}
	s.mu.Lock()
	sym, ok := s.symbols[name]
	avgPrice := s.prices[name]
	s.mu.Unlock()
	if !ok {
		return badRequest(-1121, "Invalid symbol.")
	}
	switch p["side"] {
	case "":
		return mandatory("side")
	case "BUY", "SELL":
	default:
		return badRequest(-1117, "Invalid side.")
	}
	typ := p["type"]
	switch typ {
	case "":
		return mandatory("type")
	case "LIMIT":
		switch p["timeInForce"] {
		case "":
			return mandatory("timeInForce")
		case "GTC", "IOC", "FOK":
		default:
			return badRequest(-1115, "Invalid timeInForce.")
		}
		if p["price"] == "" {
			return mandatory("price")
		}
	case "MARKET":
		for _, extra := range []string{"price", "timeInForce"} {
			if _, sent := p[extra]; sent {
				return badRequest(-1106, "Parameter '"+extra+"' sent when not required.")
			}
		}
		if p["quantity"] == "" {
			return badRequest(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
		}
	default:
		return badRequest(-1116, "Invalid orderType.")
	}
	qty, rej := parseDecimal(p, "quantity", sym.BasePrecision)
	if rej != nil {
		return rej
	}
	price := decimal.Zero
	if typ == "LIMIT" {
		if price, rej = parseDecimal(p, "price", sym.QuotePrecision); rej != nil {
			return rej
		}
	}
	if sym.Status != "TRADING" {
		return badRequest(-1013, "Market is closed.")
	}
	if failed := sym.check(typ, qty, price, avgPrice); failed != "" {
		return badRequest(-1013, "Filter failure: "+failed)
	}
	return nil
}

func parseDecimal(p map[string]string, name string, precision int) (decimal.Decimal, *rejection) {
	v := p[name]
	if v == "" {
		return decimal.Zero, mandatory(name)
	}
	if !decimalRE.MatchString(v) {
		return decimal.Zero, badRequest(-1100, "Illegal characters found in parameter '"+name+"'; legal range is '"+decimalPattern+"'.")
	}
	d := decimal.RequireFromString(v)
	if !d.Equal(d.Truncate(int32(precision))) {
		return decimal.Zero, badRequest(-1111, "Parameter '"+name+"' has too much precision.")
	}
	return d, nil
}

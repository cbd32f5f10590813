package domain_test

import (
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

func TestNewOrderRequestCanonicalises(t *testing.T) {
	for _, tc := range []struct {
		exchange, symbol, side, qty, price, typ string
		want                                    [6]string // exchange, symbol, side, type, qty, price
	}{
		{"BINANCE", "BTCUSDT", "BUY", "0.01", "", "", [6]string{"BINANCE", "BTCUSDT", "BUY", "MARKET", "0.01", ""}},
		{"binance", "btcusdt", "buy", "1e-2", "", "market", [6]string{"BINANCE", "BTCUSDT", "BUY", "MARKET", "0.01", ""}},
		{"Ibkr", "aapl", "Sell", "1", "150.50", "limit", [6]string{"IBKR", "AAPL", "SELL", "LIMIT", "1", "150.5"}},
		{"IBKR", strings.Repeat("A", 20), "SELL", "3", "", "MARKET", [6]string{"IBKR", strings.Repeat("A", 20), "SELL", "MARKET", "3", ""}},
	} {
		o, err := domain.NewOrderRequest(tc.exchange, tc.symbol, tc.side, tc.qty, tc.price, tc.typ)
		if err != nil {
			t.Errorf("%+v: %v", tc, err)
			continue
		}
		got := [6]string{string(o.Exchange()), o.Symbol(), string(o.Side()), string(o.OrderType()), o.Qty().String(), o.LimitPrice().String()}
		if got != tc.want {
			t.Errorf("%+v: got %v", tc, got)
		}
	}
}

func TestNewOrderRequestRejectsEachBadField(t *testing.T) {
	for _, tc := range []struct {
		exchange, symbol, side, qty, price, typ string
		code                                    string
	}{
		{"KRAKEN", "BTCUSDT", "BUY", "1", "", "", "unknown_exchange"},
		{"", "BTCUSDT", "BUY", "1", "", "", "unknown_exchange"},
		{"BINANCE\x00", "BTCUSDT", "BUY", "1", "", "", "unknown_exchange"},
		{"BINANCE", "", "BUY", "1", "", "", "invalid_symbol"},
		{"BINANCE", "BTC-USDT", "BUY", "1", "", "", "invalid_symbol"},
		{"BINANCE", " BTCUSDT", "BUY", "1", "", "", "invalid_symbol"},
		{"BINANCE", strings.Repeat("A", 21), "BUY", "1", "", "", "invalid_symbol"},
		{"BINANCE", "BTC\x00USDT", "BUY", "1", "", "", "invalid_symbol"},
		{"BINANCE", "\xffBTC", "BUY", "1", "", "", "invalid_symbol"},
		{"BINANCE", "btcuſdt", "BUY", "1", "", "", "invalid_symbol"}, // ſ upper-cases to S under Unicode rules
		{"BINANCE", "ＢＴＣ", "BUY", "1", "", "", "invalid_symbol"},
		{"BINANCE", "BTCUSDT", "HOLD", "1", "", "", "invalid_side"},
		{"BINANCE", "BTCUSDT", "", "1", "", "", "invalid_side"},
		{"BINANCE", "BTCUSDT", "ſell", "1", "", "", "invalid_side"}, // strings.EqualFold would say SELL
		{"BINANCE", "BTCUSDT", "BUY", "0", "", "", "invalid_quantity"},
		{"BINANCE", "BTCUSDT", "BUY", "", "", "", "invalid_quantity"},
		{"BINANCE", "BTCUSDT", "BUY", "1", "", "STOP", "invalid_order_type"},
		{"BINANCE", "BTCUSDT", "BUY", "1", "", "LIMIT", "invalid_price"},
		{"BINANCE", "BTCUSDT", "BUY", "1", "65000", "", "invalid_price"},
		{"BINANCE", "BTCUSDT", "BUY", "1", "65000", "MARKET", "invalid_price"},
		{"BINANCE", "BTCUSDT", "BUY", "1", "NaN", "LIMIT", "invalid_price"},
		{"BINANCE", "BTCUSDT", "BUY", "1", "-1", "LIMIT", "invalid_price"},
	} {
		_, err := domain.NewOrderRequest(tc.exchange, tc.symbol, tc.side, tc.qty, tc.price, tc.typ)
		wantInvalid(t, err, tc.code, "", "NewOrderRequest(%q, %q, %q, %q, %q, %q)", tc.exchange, tc.symbol, tc.side, tc.qty, tc.price, tc.typ)
	}
}

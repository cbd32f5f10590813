package main

import "testing"

// Exchange configuration: live Binance only with BINANCE_LIVE_ENABLED=true
// and BINANCE_BASE_URL together; a flag that is not true or false stops
// serve (a typo must not decide where orders go).
func TestExchangeConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		env     map[string]string
		want    exchangesConfig
		refused string // the variable the refusal names
	}{
		"defaults":      {env: nil, want: exchangesConfig{BinanceURL: "https://testnet.binance.vision"}},
		"testnet":       {env: map[string]string{"BINANCE_TESTNET_BASE_URL": "http://127.0.0.1:9"}, want: exchangesConfig{BinanceURL: "http://127.0.0.1:9"}},
		"base URL only": {env: map[string]string{"BINANCE_BASE_URL": "https://api.binance.com"}, want: exchangesConfig{BinanceURL: "https://testnet.binance.vision"}},
		"live": {env: map[string]string{"BINANCE_BASE_URL": "https://api.binance.com", "BINANCE_LIVE_ENABLED": "true"},
			want: exchangesConfig{BinanceURL: "https://api.binance.com", BinanceLive: true}},
		"live off": {env: map[string]string{"BINANCE_BASE_URL": "https://api.binance.com", "BINANCE_LIVE_ENABLED": "false"},
			want: exchangesConfig{BinanceURL: "https://testnet.binance.vision"}},
		"live without URL": {env: map[string]string{"BINANCE_LIVE_ENABLED": "true"}, refused: "BINANCE_BASE_URL"},
		"live typo":        {env: map[string]string{"BINANCE_LIVE_ENABLED": "yes", "BINANCE_BASE_URL": "https://api.binance.com"}, refused: "BINANCE_LIVE_ENABLED"},
		"ibkr gateway": {env: map[string]string{"IBKR_BRIDGE_BASE_URL": "https://localhost:5000/v1/api", "IBKR_BRIDGE_INSECURE_TLS": "true", "IBKR_LIVE_ENABLED": "false"},
			want: exchangesConfig{BinanceURL: "https://testnet.binance.vision", IBKRBridgeURL: "https://localhost:5000/v1/api", IBKRInsecureTLS: true}},
		"ibkr live typo": {env: map[string]string{"IBKR_LIVE_ENABLED": "TRUE"}, refused: "IBKR_LIVE_ENABLED"},
		"tls typo":       {env: map[string]string{"IBKR_BRIDGE_INSECURE_TLS": "1"}, refused: "IBKR_BRIDGE_INSECURE_TLS"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := loadConfig(goodEnv(tc.env), false)
			if tc.refused != "" {
				wantUsageError(t, err, tc.refused, "")
				return
			}
			if err != nil || c.Exchanges != tc.want {
				t.Fatalf("%+v %v, want %+v", c.Exchanges, err, tc.want)
			}
		})
	}
}

// A malformed exchange URL stops serve, naming the variable.
func TestExchangeURLRefused(t *testing.T) {
	for variable, env := range map[string]map[string]string{
		"BINANCE_TESTNET_BASE_URL": {"BINANCE_TESTNET_BASE_URL": "testnet.binance.vision"},
		"IBKR_BRIDGE_BASE_URL":     {"IBKR_BRIDGE_BASE_URL": "localhost:5000"},
	} {
		err := run(t.Context(), []string{"tradeops", "serve"}, goodEnv(env), nil, &syncBuffer{}, &syncBuffer{})
		wantUsageError(t, err, variable, "")
	}
}

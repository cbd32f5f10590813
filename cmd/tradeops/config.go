package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/tradeops/tradeops/domain"
)

// config is the service configuration (DESIGN §7). Secret values are only
// ever handed to the components that need them, never logged.
type config struct {
	DatabaseURL   string
	SecretKey     []byte
	EncryptionKey []byte
	ListenAddr    string
	LogLevel      slog.Level
	TrustProxy    bool
	// TrustedProxies are the proxies whose X-Forwarded-For / X-Real-IP
	// entries are believed; nil means ports/http's default (private ranges).
	TrustedProxies []netip.Prefix
	Dev            bool
	// GeneratedSecrets names the secrets --dev made up (printed loudly).
	GeneratedSecrets []string
	Exchanges        exchangesConfig
}

// exchangesConfig is where test orders go (DESIGN §5, §7).
type exchangesConfig struct {
	// BinanceURL is BINANCE_BASE_URL when BinanceLive, else
	// BINANCE_TESTNET_BASE_URL (default https://testnet.binance.vision).
	BinanceURL  string
	BinanceLive bool
	// IBKRBridgeURL empty means the simulator.
	IBKRBridgeURL   string
	IBKRInsecureTLS bool
	// IBKRLive allows non-paper (not DU...) accounts.
	IBKRLive bool
}

const defaultBinanceTestnet = "https://testnet.binance.vision"

// loadExchanges reads the exchange variables. A flag must be true or false:
// a typo must not decide whether orders go to live Binance.
func loadExchanges(getenv env) (exchangesConfig, error) {
	var c exchangesConfig
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"BINANCE_LIVE_ENABLED", &c.BinanceLive}, {"IBKR_BRIDGE_INSECURE_TLS", &c.IBKRInsecureTLS}, {"IBKR_LIVE_ENABLED", &c.IBKRLive}} {
		switch v := getenv(f.name); v {
		case "true":
			*f.dst = true
		case "false", "":
		default:
			return c, usageError("%s must be true or false, got %q", f.name, v)
		}
	}
	c.BinanceURL = orDefault(getenv("BINANCE_TESTNET_BASE_URL"), defaultBinanceTestnet)
	if c.BinanceLive {
		if c.BinanceURL = getenv("BINANCE_BASE_URL"); c.BinanceURL == "" {
			return c, usageError("BINANCE_LIVE_ENABLED=true needs BINANCE_BASE_URL (live Binance, e.g. https://api.binance.com); even live, only order/test is called")
		}
	}
	c.IBKRBridgeURL = getenv("IBKR_BRIDGE_BASE_URL")
	return c, nil
}

// generated reports whether --dev made up the named secret.
func (c config) generated(name string) bool {
	for _, n := range c.GeneratedSecrets {
		if n == name {
			return true
		}
	}
	return false
}

// lookup reads NAME, or the file named by NAME_FILE (the Docker/Kubernetes
// secrets convention). Setting both is an error: which one wins would be a guess.
func lookup(getenv env, name string) (string, error) {
	v, file := getenv(name), getenv(name+"_FILE")
	switch {
	case v != "" && file != "":
		return "", usageError("%s and %s_FILE are both set; set only one", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError("%s_FILE: cannot read %s: %v", name, file, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return v, nil
}

// loadConfig reads and validates the environment. In dev mode missing
// secrets are generated (throwaway: tokens and ciphertexts die with the
// process); outside it a missing or weak secret stops the server, naming the
// variable and never its value.
func loadConfig(getenv env, dev bool) (config, error) {
	c := config{Dev: dev, ListenAddr: getenv("LISTEN_ADDR")}
	if c.ListenAddr == "" {
		c.ListenAddr = ":8080"
	}
	// A typo ("ture", "yes") must not silently leave the server keying its
	// throttle on the proxy's address, nor trust headers it was not meant to.
	switch v := getenv("TRUST_PROXY_HEADERS"); v {
	case "true":
		c.TrustProxy = true
	case "false", "":
	default:
		return c, usageError("TRUST_PROXY_HEADERS must be true or false, got %q", v)
	}
	var err error
	if c.Exchanges, err = loadExchanges(getenv); err != nil {
		return c, err
	}
	if c.TrustedProxies, err = parseTrustedProxies(getenv("TRUSTED_PROXIES")); err != nil {
		return c, usageError("TRUSTED_PROXIES: %v", err)
	}
	if c.DatabaseURL, err = lookup(getenv, "DATABASE_URL"); err != nil {
		return c, err
	}
	if c.DatabaseURL == "" {
		return c, usageError("DATABASE_URL is not set (make run sets it for you)")
	}
	if c.LogLevel, err = logLevel(getenv); err != nil {
		return c, err
	}
	secret, err := lookup(getenv, "SECRET_KEY")
	if err != nil {
		return c, err
	}
	switch {
	case secret == "" && dev:
		secret = base64.RawURLEncoding.EncodeToString(randomBytes(32))
		c.GeneratedSecrets = append(c.GeneratedSecrets, "SECRET_KEY")
	case secret == "":
		return c, usageError("SECRET_KEY is not set: it must be at least 32 bytes (e.g. openssl rand -base64 32)")
	case len(secret) < 32:
		return c, usageError("SECRET_KEY is too weak: it must be at least 32 bytes")
	}
	if why := domain.WeakKey([]byte(secret)); why != "" {
		return c, usageError("SECRET_KEY is too weak: %s; use a random value (e.g. openssl rand -base64 32)", why)
	}
	c.SecretKey = []byte(secret)
	enc, err := lookup(getenv, "ENCRYPTION_KEY")
	if err != nil {
		return c, err
	}
	if enc == "" && dev {
		c.EncryptionKey = randomBytes(32)
		c.GeneratedSecrets = append(c.GeneratedSecrets, "ENCRYPTION_KEY")
	} else if c.EncryptionKey, err = domain.ParseEncryptionKey("ENCRYPTION_KEY", domain.NewSecret(enc)); err != nil {
		return c, usageError("%v", err)
	}
	return c, nil
}

// parseTrustedProxies reads TRUSTED_PROXIES: comma-separated CIDRs or
// single addresses. Empty means the default (nil).
func parseTrustedProxies(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR (e.g. 10.0.0.0/8, fd00::/8)", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

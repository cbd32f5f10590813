package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strings"
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
	if c.TrustedProxies, err = parseTrustedProxies(getenv("TRUSTED_PROXIES")); err != nil {
		return c, usageError("TRUSTED_PROXIES: %v", err)
	}
	if c.DatabaseURL, err = lookup(getenv, "DATABASE_URL"); err != nil {
		return c, err
	}
	if c.DatabaseURL == "" {
		return c, usageError("DATABASE_URL is not set (make run sets it for you)")
	}
	if err := c.LogLevel.UnmarshalText([]byte(orDefault(getenv("LOG_LEVEL"), "info"))); err != nil {
		return c, usageError("LOG_LEVEL must be one of debug, info, warn, error")
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
	if why := weakKey([]byte(secret)); why != "" {
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
	} else if c.EncryptionKey, err = decodeKey(enc); err != nil {
		return c, usageError("ENCRYPTION_KEY %v", err)
	} else if why := weakKey(c.EncryptionKey); why != "" {
		return c, usageError("ENCRYPTION_KEY is too weak: %s; it must be 32 random bytes (e.g. openssl rand -base64 32)", why)
	}
	return c, nil
}

// Key strength rule (README, "Configuration"): a key is refused when it has
// fewer than minDistinctBytes different byte values, is a shorter string
// repeated, or its entropy estimate (Shannon entropy of its byte
// frequencies, in bits per byte, times its length) is under minEntropyBits.
// It catches placeholders and typed patterns ("aaaa…", "abab…", "changeme"
// repeated, an all-zero key), not every guessable key. The thresholds are
// set by the weakest legitimate key, 16 random bytes in hex (32 characters):
// sampled, it shows fewer than 10 distinct characters once in ~10^4 draws
// and under 96 estimated bits as often, but fewer than 8 distinct only
// about 4 times in 10^8 and never under 80 bits in 2·10^6 draws. Base64 of
// 32 random bytes (openssl rand -base64 32, --dev, devsecrets.sh) and raw
// random keys are far above both.
const (
	minDistinctBytes = 8
	minEntropyBits   = 72
)

// weakKey returns why key is weak, or "" when it passes the rule. The
// reason never quotes the key.
func weakKey(key []byte) string {
	var freq [256]int
	distinct := 0
	for _, b := range key {
		if freq[b] == 0 {
			distinct++
		}
		freq[b]++
	}
	if distinct < minDistinctBytes {
		return fmt.Sprintf("it has %d distinct byte values (at least %d required)", distinct, minDistinctBytes)
	}
	if p := period(key); p < len(key) {
		return fmt.Sprintf("it repeats a %d-byte pattern", p)
	}
	var perByte float64
	for _, n := range freq {
		if n > 0 {
			p := float64(n) / float64(len(key))
			perByte -= p * math.Log2(p)
		}
	}
	if bits := perByte * float64(len(key)); bits < minEntropyBits {
		return fmt.Sprintf("its estimated entropy is %.0f bits (at least %d required)", bits, minEntropyBits)
	}
	return ""
}

// period returns the length of the shortest p such that key is a prefix
// of its first p bytes repeated, counting only p up to half its length
// (so at least two full repetitions); otherwise len(key).
func period(key []byte) int {
	for p := 1; p <= len(key)/2; p++ {
		i := p
		for i < len(key) && key[i] == key[i-p] {
			i++
		}
		if i == len(key) {
			return p
		}
	}
	return len(key)
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

// decodeKey reads a 32-byte key in standard or URL-safe base64, padded or not.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("is not set: it must be 32 random bytes in base64 (e.g. openssl rand -base64 32)")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("must decode to exactly 32 bytes, got %d", len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("is not valid base64")
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

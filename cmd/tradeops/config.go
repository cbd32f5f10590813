package main

import (
	"crypto/rand"
	"encoding/base64"
	"log/slog"
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
	Dev           bool
	// GeneratedSecrets names the secrets --dev made up (printed loudly).
	GeneratedSecrets []string
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
	c := config{Dev: dev, ListenAddr: getenv("LISTEN_ADDR"), TrustProxy: getenv("TRUST_PROXY_HEADERS") == "true"}
	if c.ListenAddr == "" {
		c.ListenAddr = ":8080"
	}
	var err error
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

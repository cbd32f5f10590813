package binance

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"

	"github.com/tradeops/tradeops/domain"
)

// Credentials are a user's Binance API key and secret. The secret is either
// an HMAC secret or an Ed25519 private key as a PKCS#8 PEM block (what
// Binance's key generator writes); the key type is read from the secret.
type Credentials struct {
	APIKey domain.Secret
	Secret domain.Secret
}

// KeyType names the signing scheme a secret selects.
type KeyType string

const (
	KeyHMAC    KeyType = "HMAC_SHA256"
	KeyEd25519 KeyType = "ED25519"
)

// DetectKeyType reports which scheme secret selects, or ErrInvalidCredentials
// for a PEM private key that is not Ed25519 (RSA keys are not supported).
func DetectKeyType(secret domain.Secret) (KeyType, error) {
	_, kt, err := parseSecret(secret.Reveal())
	return kt, err
}

// sign returns the value of the `signature` parameter for payload (the query
// string followed by the body, as sent), ready to append to a form: HMAC as
// lowercase hex, Ed25519 as percent-encoded base64. The secret is revealed
// here and nowhere else.
func sign(secret domain.Secret, payload string) (string, error) {
	key, kt, err := parseSecret(secret.Reveal())
	if err != nil {
		return "", err
	}
	if kt == KeyEd25519 {
		sig := ed25519.Sign(key.(ed25519.PrivateKey), []byte(payload))
		return url.QueryEscape(base64.StdEncoding.EncodeToString(sig)), nil
	}
	mac := hmac.New(sha256.New, key.([]byte))
	mac.Write([]byte(payload))
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// parseSecret returns the signing key: an ed25519.PrivateKey for a PKCS#8
// "PRIVATE KEY" PEM block, else the secret's bytes for HMAC. Errors never
// quote the secret.
func parseSecret(s string) (any, KeyType, error) {
	if !strings.Contains(s, "-----BEGIN") {
		return []byte(s), KeyHMAC, nil
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, "", fmt.Errorf("%w: the secret looks like PEM but holds no PKCS#8 \"PRIVATE KEY\" block", ErrInvalidCredentials)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%w: the PKCS#8 private key does not parse", ErrInvalidCredentials)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, "", fmt.Errorf("%w: only Ed25519 private keys are supported, got %T", ErrInvalidCredentials, k)
	}
	return ed, KeyEd25519, nil
}

package binance

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

// Binance's documented HMAC example (REST API docs, "HMAC Keys").
func TestSignHMACDocumentedExample(t *testing.T) {
	secret := domain.NewSecret("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j")
	payload := "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
	got, err := sign(secret, payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"; got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
	if kt, _ := DetectKeyType(secret); kt != KeyHMAC {
		t.Fatalf("key type = %s, want %s", kt, KeyHMAC)
	}
}

func ed25519PEM(t *testing.T) (ed25519.PublicKey, domain.Secret) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pub, domain.NewSecret(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

// No Ed25519 vector is published: sign with a generated PKCS#8 key and
// verify with its public key.
func TestSignEd25519(t *testing.T) {
	pub, secret := ed25519PEM(t)
	if kt, err := DetectKeyType(secret); err != nil || kt != KeyEd25519 {
		t.Fatalf("key type = %s, %v; want %s", kt, err, KeyEd25519)
	}
	payload := "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&recvWindow=5000&timestamp=1700000000000"
	got, err := sign(secret, payload)
	if err != nil {
		t.Fatal(err)
	}
	// Percent-encoded base64: the '+', '/' and '=' of base64 never appear raw.
	if strings.ContainsAny(got, "+/=") {
		t.Fatalf("signature %q is not percent-encoded", got)
	}
	unescaped, err := url.QueryUnescape(got)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(unescaped)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, []byte(payload), raw) {
		t.Fatal("signature does not verify with the public key")
	}
	if ed25519.Verify(pub, []byte(payload+"&x=1"), raw) {
		t.Fatal("signature verifies over another payload")
	}
}

func TestSignRefusesOtherPEMKeys(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"rsa pkcs8":       string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"rsa pkcs1 block": string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		"garbled pkcs8":   "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		_, err := sign(domain.NewSecret(s), "a=1")
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: err = %v, want ErrInvalidCredentials", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "MII") {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
}

package keyring_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/adapters/keyring"
	"github.com/tradeops/tradeops/app"
)

func newKeyring(t *testing.T, fill byte) *keyring.Keyring {
	t.Helper()
	k, err := keyring.New(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenAndFormat(t *testing.T) {
	k := newKeyring(t, 1)
	sum := sha256.Sum256(bytes.Repeat([]byte{1}, 32))
	if k.KeyID() != hex.EncodeToString(sum[:8]) {
		t.Fatalf("key id %s", k.KeyID())
	}
	b := app.SecretBinding{Owner: "user-1", Purpose: "totp", Field: "seed"}
	s, err := k.Seal([]byte("JBSWY3DPEHPK3PXP"), b)
	if err != nil {
		t.Fatal(err)
	}
	ct := s[k.KeyID()]
	if len(s) != 1 || ct[0] != 1 || hex.EncodeToString(ct[1:9]) != k.KeyID() || len(ct) != 1+8+12+16+16 {
		t.Fatalf("ciphertext layout: %x", ct)
	}
	if bytes.Contains(ct, []byte("JBSWY3DP")) {
		t.Fatal("plaintext in ciphertext")
	}
	got, err := k.Open(s, b)
	if err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open: %q %v", got, err)
	}
	again, _ := k.Seal([]byte("JBSWY3DPEHPK3PXP"), b)
	if bytes.Equal(again[k.KeyID()], ct) {
		t.Fatal("nonce reused")
	}
}

func TestCiphertextIsBoundToItsRow(t *testing.T) {
	k := newKeyring(t, 1)
	b := app.SecretBinding{Owner: "user-1", Purpose: "totp", Field: "seed"}
	s, _ := k.Seal([]byte("secret"), b)
	for _, other := range []app.SecretBinding{
		{Owner: "user-2", Purpose: "totp", Field: "seed"},
		{Owner: "user-1", Purpose: "BINANCE", Field: "seed"},
		{Owner: "user-1", Purpose: "totp", Field: "api_secret"},
		{Owner: "user-1totp", Purpose: "", Field: "seed"}, // no ambiguity from concatenation
	} {
		if _, err := k.Open(s, other); !errors.Is(err, keyring.ErrUndecryptable) || !strings.Contains(err.Error(), k.KeyID()) {
			t.Errorf("%+v: %v", other, err)
		}
	}
	tampered := app.Sealed{k.KeyID(): bytes.Clone(s[k.KeyID()])}
	tampered[k.KeyID()][30] ^= 1
	if _, err := k.Open(tampered, b); !errors.Is(err, keyring.ErrUndecryptable) {
		t.Fatal(err)
	}
}

// A value may carry ciphertexts under several keys (rotation); each server
// opens the one under its own key, and a value without one names the ids.
func TestSeveralKeyIDs(t *testing.T) {
	oldK, newK := newKeyring(t, 1), newKeyring(t, 2)
	b := app.SecretBinding{Owner: "u", Purpose: "totp", Field: "seed"}
	s, _ := oldK.Seal([]byte("v"), b)
	add, _ := newK.Seal([]byte("v"), b)
	s[newK.KeyID()] = add[newK.KeyID()]
	for _, k := range []*keyring.Keyring{oldK, newK} {
		if got, err := k.Open(s, b); err != nil || string(got) != "v" {
			t.Fatalf("key %s: %q %v", k.KeyID(), got, err)
		}
	}
	onlyOld, _ := oldK.Seal([]byte("v"), b)
	_, err := newK.Open(onlyOld, b)
	if !errors.Is(err, keyring.ErrUndecryptable) || !strings.Contains(err.Error(), oldK.KeyID()) || !strings.Contains(err.Error(), newK.KeyID()) {
		t.Fatalf("error must name both key ids: %v", err)
	}
	// A ciphertext filed under the wrong key id is refused, not garbage.
	if _, err := newK.Open(app.Sealed{newK.KeyID(): onlyOld[oldK.KeyID()]}, b); !errors.Is(err, keyring.ErrUndecryptable) {
		t.Fatal(err)
	}
	if _, err := keyring.New([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

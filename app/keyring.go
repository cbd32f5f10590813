package app

import "slices"

// This file holds the ports of encryption at rest, shared by identity (TOTP
// seeds), the exchange secrets vault and key rotation. One keyring, built
// from ENCRYPTION_KEY in the composition root, serves them all.

// Sealed is a secret encrypted at rest, under one or more keys: key id
// (hex) -> ciphertext. Several entries exist while a key rotation is under
// way; a server uses the one matching its own key.
type Sealed map[string][]byte

// KeyIDs lists the key ids s holds a ciphertext under, sorted.
func (s Sealed) KeyIDs() []string {
	ids := make([]string, 0, len(s))
	for id := range s {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// SecretBinding is what a ciphertext is bound to (its associated data): a
// ciphertext copied to another owner, purpose or field does not decrypt.
type SecretBinding struct {
	Owner   string // user id
	Purpose string // TOTPPurpose, or an exchange name
	Field   string // TOTPField, "api_secret", ...
}

// The binding of a TOTP seed: owner = the user id.
const (
	TOTPPurpose = "totp"
	TOTPField   = "seed"
)

// Keyring encrypts secrets at rest under one key.
type Keyring interface {
	// KeyID identifies the key (safe to log and show).
	KeyID() string
	Seal(plaintext []byte, b SecretBinding) (Sealed, error)
	// Open decrypts the ciphertext under the keyring's key; a value with
	// none, or one that fails authentication, is an error naming the key ids.
	Open(s Sealed, b SecretBinding) ([]byte, error)
}

// KeyringFactory builds a keyring for a 32-byte key: rotation needs the old
// and the new key besides the server's own.
type KeyringFactory func(key []byte) (Keyring, error)

// Package keyring encrypts secrets at rest with AES-256-GCM (DESIGN §4).
//
// A ciphertext is: version byte (1) ‖ key id (first 8 bytes of SHA-256 of
// the key) ‖ 12-byte random nonce ‖ GCM-sealed data. The associated data is
// the 9-byte header followed by the owner, purpose and field the secret
// belongs to, each length-prefixed, so a ciphertext copied to another row,
// or with its header edited, fails to decrypt.
//
// A stored value (app.Sealed) maps key ids to ciphertexts, so it can hold
// the same secret under an old and a new key during a rotation; a keyring
// opens whichever entry carries its own key id.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tradeops/tradeops/app"
)

const (
	version   = 1
	keyIDLen  = 8
	nonceLen  = 12
	headerLen = 1 + keyIDLen
)

// ErrUndecryptable is wrapped by every failure to decrypt a stored value.
var ErrUndecryptable = errors.New("undecryptable secret")

// Keyring holds one AES-256 key.
type Keyring struct {
	aead  cipher.AEAD
	id    [keyIDLen]byte
	idHex string
}

// New returns a keyring for a 32-byte key.
func New(key []byte) (*Keyring, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("keyring: key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	sum := sha256.Sum256(key)
	k := &Keyring{aead: aead}
	copy(k.id[:], sum[:keyIDLen])
	k.idHex = hex.EncodeToString(k.id[:])
	return k, nil
}

// KeyID is the key's id in hex: safe to log and show, it reveals nothing
// of the key.
func (k *Keyring) KeyID() string { return k.idHex }

// Seal encrypts plaintext for b under this keyring's key.
func (k *Keyring) Seal(plaintext []byte, b app.SecretBinding) (app.Sealed, error) {
	ct, err := k.Encrypt(plaintext, b)
	if err != nil {
		return nil, err
	}
	return app.Sealed{k.idHex: ct}, nil
}

// Open decrypts the entry of s under this keyring's key.
func (k *Keyring) Open(s app.Sealed, b app.SecretBinding) ([]byte, error) {
	ct, ok := s[k.idHex]
	if !ok {
		ids := make([]string, 0, len(s))
		for id := range s {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return nil, fmt.Errorf("%w: it is encrypted under key id(s) [%s], not under this server's key id %s (check ENCRYPTION_KEY)",
			ErrUndecryptable, strings.Join(ids, ", "), k.idHex)
	}
	return k.Decrypt(ct, b)
}

// Encrypt returns one ciphertext of plaintext bound to b.
func (k *Keyring) Encrypt(plaintext []byte, b app.SecretBinding) ([]byte, error) {
	out := make([]byte, headerLen+nonceLen, headerLen+nonceLen+len(plaintext)+k.aead.Overhead())
	out[0] = version
	copy(out[1:headerLen], k.id[:])
	if _, err := rand.Read(out[headerLen:]); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	return k.aead.Seal(out, out[headerLen:], plaintext, associatedData(out[:headerLen], b)), nil
}

// Decrypt opens one ciphertext bound to b.
func (k *Keyring) Decrypt(ct []byte, b app.SecretBinding) ([]byte, error) {
	if len(ct) < headerLen+nonceLen+k.aead.Overhead() || ct[0] != version {
		return nil, fmt.Errorf("%w: not a version-%d ciphertext", ErrUndecryptable, version)
	}
	if id := hex.EncodeToString(ct[1:headerLen]); id != k.idHex {
		return nil, fmt.Errorf("%w: ciphertext is under key id %s, this server's key id is %s", ErrUndecryptable, id, k.idHex)
	}
	plain, err := k.aead.Open(nil, ct[headerLen:headerLen+nonceLen], ct[headerLen+nonceLen:], associatedData(ct[:headerLen], b))
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext under key id %s fails authentication (tampered, or moved from another row)", ErrUndecryptable, k.idHex)
	}
	return plain, nil
}

func associatedData(header []byte, b app.SecretBinding) []byte {
	ad := slices.Clone(header)
	for _, f := range []string{b.Owner, b.Purpose, b.Field} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(f)))
		ad = append(ad, f...)
	}
	return ad
}

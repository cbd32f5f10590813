package domain

import "encoding/base64"

// EncryptionKeyLength is the size of an ENCRYPTION_KEY: AES-256.
const EncryptionKeyLength = 32

// ParseEncryptionKey reads an encryption key: 32 bytes in base64, standard
// or URL-safe, padded or not. A key of one repeated byte (all zeros, say) is
// refused as a placeholder, never a generated key. name is what the caller
// calls it (ENCRYPTION_KEY, old_key, ...); messages never include the value.
func ParseEncryptionKey(name string, s Secret) ([]byte, error) {
	if s.IsZero() {
		return nil, Errorf(KindInvalid, "missing_field", "%s is not set: it must be 32 random bytes in base64 (e.g. openssl rand -base64 32)", name)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s.Reveal())
		if err != nil {
			continue
		}
		if len(b) != EncryptionKeyLength {
			return nil, Errorf(KindInvalid, "invalid_key", "%s must decode to exactly %d bytes, got %d", name, EncryptionKeyLength, len(b))
		}
		if repeated(b) {
			return nil, Errorf(KindInvalid, "invalid_key", "%s is one byte repeated, not a random key (e.g. openssl rand -base64 32)", name)
		}
		return b, nil
	}
	return nil, Errorf(KindInvalid, "invalid_key", "%s is not valid base64 (standard or URL-safe)", name)
}

func repeated(b []byte) bool {
	for _, c := range b[1:] {
		if c != b[0] {
			return false
		}
	}
	return true
}

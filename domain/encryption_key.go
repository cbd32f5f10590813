package domain

import (
	"encoding/base64"
	"fmt"
	"math"
)

// EncryptionKeyLength is the size of an ENCRYPTION_KEY: AES-256.
const EncryptionKeyLength = 32

// ParseEncryptionKey reads an encryption key: 32 bytes in base64, standard
// or URL-safe, padded or not, that passes the key strength rule (WeakKey).
// ENCRYPTION_KEY and the new key of a rotation go through it, so a key serve
// would refuse can never be rotated to. name is what the caller calls it
// (ENCRYPTION_KEY, new_key, ...); messages never include the value.
func ParseEncryptionKey(name string, s Secret) ([]byte, error) {
	b, err := DecodeEncryptionKey(name, s)
	if err != nil {
		return nil, err
	}
	if why := WeakKey(b); why != "" {
		clear(b)
		return nil, Errorf(KindInvalid, "invalid_key", "%s is too weak: %s; it must be 32 random bytes (e.g. openssl rand -base64 32)", name, why)
	}
	return b, nil
}

// DecodeEncryptionKey checks only the format (32 bytes in base64). It is for
// the old key of a rotation: a deployment still on a key the strength rule
// now refuses must be able to rotate away from it, and the old key proves
// itself anyway by decrypting every value it claims.
func DecodeEncryptionKey(name string, s Secret) ([]byte, error) {
	if s.IsZero() {
		return nil, Errorf(KindInvalid, "missing_field", "%s is not set: it must be 32 random bytes in base64 (e.g. openssl rand -base64 32)", name)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s.Reveal())
		if err != nil {
			continue
		}
		if len(b) != EncryptionKeyLength {
			clear(b)
			return nil, Errorf(KindInvalid, "invalid_key", "%s must decode to exactly %d bytes, got %d", name, EncryptionKeyLength, len(b))
		}
		return b, nil
	}
	return nil, Errorf(KindInvalid, "invalid_key", "%s is not valid base64 (standard or URL-safe)", name)
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

// WeakKey returns why key (SECRET_KEY as given, an encryption key once
// decoded) is weak, or "" when it passes the rule. The reason never quotes
// the key.
func WeakKey(key []byte) string {
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

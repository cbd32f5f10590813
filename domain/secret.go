package domain

import (
	"encoding/json"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret holds a value that must never reach a log line, an event, an error
// body or a debug dump: passwords, OTP codes, TOTP seeds, tokens, password
// hashes. Every formatting path prints [REDACTED]; only Reveal hands out the
// value, so each place that needs it is explicit and easy to audit.
type Secret struct {
	value string
}

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{value: v} }

// Reveal returns the value. Call it only where the value is consumed
// (hashing, verifying, signing, writing the one response that carries it).
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether s holds nothing.
func (s Secret) IsZero() bool { return s.value == "" }

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

package domain

import (
	"strings"
	"unicode"
)

// MaxEmailLength is RFC 5321's limit on a forward path, in bytes. No
// account has a longer login name, so inputs beyond it are refused early.
const MaxEmailLength = 254

// Email is a user's login name: trimmed and lowercased, so that addresses
// differing only in case are one account (the users table also keeps a
// unique index on lower(email)).
type Email struct {
	addr string
}

// ParseEmail validates and normalises an address. The check is deliberately
// shallow (valid text, one @, non-empty parts, no spaces or control characters): mail
// delivery is not our business, a unique stable login name is.
func ParseEmail(s string) (Email, error) {
	addr := NormalizeEmail(s)
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(addr) > MaxEmailLength ||
		!ValidText(s) || // before lowercasing, which turns invalid bytes into U+FFFD
		strings.IndexFunc(addr, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return Email{}, Errorf(KindInvalid, "invalid_email", "email must look like name@example.com (at most %d characters)", MaxEmailLength)
	}
	return Email{addr: addr}, nil
}

// NormalizeEmail is the canonical form of an attempted login name, valid or
// not: login throttling and audit key on it without revealing whether it
// names an account.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (e Email) String() string { return e.addr }

// IsZero reports whether e is the zero Email.
func (e Email) IsZero() bool { return e.addr == "" }

package domain

import "unicode/utf8"

// Password policy for passwords set on create or reset. Login accepts any
// string: a policy change must not lock existing users out.
const (
	MinPasswordLength = 12
	// MaxPasswordLength bounds the input to hashing; argon2id's cost does not
	// depend on it, but nobody needs more and request bodies stay small.
	MaxPasswordLength = 1024
)

// NewPassword checks a new password against the policy. The error never
// contains the password.
func NewPassword(s string) (Secret, error) {
	if n := utf8.RuneCountInString(s); n < MinPasswordLength || len(s) > MaxPasswordLength {
		return Secret{}, Errorf(KindInvalid, "weak_password", "password must be %d to %d characters long", MinPasswordLength, MaxPasswordLength)
	}
	return NewSecret(s), nil
}

// Package totp implements RFC 6238 time-based one-time codes with
// github.com/pquerna/otp: SHA1, 30-second steps, ±1 step of clock skew.
package totp

import (
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/tradeops/tradeops/domain"
)

const period = 30

// TOTP generates seeds and verifies codes.
type TOTP struct {
	issuer string
	digits otp.Digits
}

// New returns the production configuration: 6 digits, issuer "tradeops".
func New() TOTP { return TOTP{issuer: "tradeops", digits: otp.DigitsSix} }

// WithDigits returns t checking codes of n digits (RFC 6238's test vectors
// have 8).
func (t TOTP) WithDigits(n int) TOTP {
	t.digits = otp.Digits(n)
	return t
}

// NewSeed returns a random 160-bit seed (base32) and its otpauth:// URL.
func (t TOTP) NewSeed(account string) (seed, url domain.Secret, err error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: t.issuer, AccountName: account, Period: period, Digits: t.digits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return domain.Secret{}, domain.Secret{}, err
	}
	return domain.NewSecret(key.Secret()), domain.NewSecret(key.URL()), nil
}

// Verify checks code against the steps now-1, now and now+1, skipping those
// not after lastStep: the library has no replay protection, so this is it.
// It returns the step the code is valid for.
func (t TOTP) Verify(seed, code domain.Secret, now time.Time, lastStep int64) (int64, bool) {
	current := now.Unix() / period
	for _, step := range []int64{current, current - 1, current + 1} {
		if step <= lastStep || step < 0 {
			continue
		}
		// hotp compares in constant time; totp.ValidateCustom would not say
		// which step matched.
		ok, err := hotp.ValidateCustom(code.Reveal(), uint64(step), seed.Reveal(), hotp.ValidateOpts{Digits: t.digits, Algorithm: otp.AlgorithmSHA1})
		if err == nil && ok {
			return step, true
		}
	}
	return 0, false
}

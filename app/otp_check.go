package app

import (
	"context"
	"errors"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// errWrongCode is a wrong code on the 2FA endpoints: the caller is
// authenticated, so this is bad input (400), not a failed login (401).
var errWrongCode = domain.Errorf(domain.KindInvalid, "otp_invalid", "the one-time code is invalid or was already used")

// otpCheck runs a 2FA change that must be confirmed with a valid code. The
// code is checked under the login throttle of the caller's account and IP,
// so a stolen token cannot brute-force its way to turning 2FA off.
type otpCheck struct {
	users     UserRepository
	attempts  LoginAttempts
	keyring   Keyring
	totp      TOTP
	usernames domain.UsernameKey
	policy    domain.ThrottlePolicy
	clock     Clock
}

// run applies change to the caller's user (it records the event and may
// edit the credentials) and keeps it only if code is valid for the seed
// stored before the change. Like a login, the check runs to its end even if
// the client goes away (see detach).
func (o *otpCheck) run(ctx context.Context, action string, code domain.Secret, change func(u *domain.User, c *Credentials, now time.Time) error) error {
	caller := CallerFrom(ctx)
	if caller.UserID == "" {
		return errUnauthenticated
	}
	ctx, cancel := detach(ctx, o.policy)
	defer cancel()
	account := o.usernames.Hash(caller.Email)
	stream := domain.LoginStream(account)
	attempt, err := o.attempts.Begin(ctx, account, domain.ThrottleSource(caller.ClientIP), o.clock.Now(), o.policy)
	if err != nil {
		return err
	}
	if attempt.RetryAfter > 0 {
		ev := domain.NewTwoFactorCheckFailed(caller.UserID, action, domain.LoginFailureThrottled)
		if err := finishAttempt(ctx, o.attempts, o.policy, attempt, AttemptResult{Outcome: AttemptThrottled, Stream: stream, Event: &ev}); err != nil {
			return err
		}
		return tooManyAttempts(attempt.RetryAfter)
	}
	now := o.clock.Now()
	err = o.users.Update(ctx, caller.UserID, func(u *domain.User, c *Credentials) error {
		seed := c.TOTP
		if err := change(u, c, now); err != nil {
			return err
		}
		step, ok, err := checkOTP(o.keyring, o.totp, u.ID(), seed, code, now)
		if err != nil {
			return err
		}
		if !ok {
			return errWrongCode
		}
		seed.LastStep = step
		return nil
	})
	result := AttemptResult{Outcome: AttemptUncounted}
	if errors.Is(err, errWrongCode) {
		ev := domain.NewTwoFactorCheckFailed(caller.UserID, action, domain.LoginFailureOTPInvalid)
		result = AttemptResult{Outcome: AttemptFailed, Stream: stream, Event: &ev}
	}
	if ferr := finishAttempt(ctx, o.attempts, o.policy, attempt, result); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

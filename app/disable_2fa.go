package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// DisableTwoFactorHandler turns the caller's 2FA off, given a valid code
// (auth.2fa.disabled). Every token issued before stops working.
type DisableTwoFactorHandler struct{ check *otpCheck }

func NewDisableTwoFactorHandler(users UserRepository, attempts LoginAttempts, keyring Keyring, totp TOTP,
	usernames domain.UsernameKey, policy domain.ThrottlePolicy, clock Clock,
) *DisableTwoFactorHandler {
	return &DisableTwoFactorHandler{check: &otpCheck{users, attempts, keyring, totp, usernames, policy, clock}}
}

func (h *DisableTwoFactorHandler) Handle(ctx context.Context, code domain.Secret) error {
	return h.check.run(ctx, "disable", code, func(u *domain.User, c *Credentials, now time.Time) error {
		if err := u.DisableTwoFactor(now, false); err != nil {
			return err
		}
		c.TOTP = nil
		return nil
	})
}

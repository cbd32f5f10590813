package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// EnableTwoFactorHandler activates a pending TOTP enrolment once the user
// proves, with a code, that their authenticator holds the seed
// (auth.2fa.enabled). Every token issued before stops working.
type EnableTwoFactorHandler struct{ check *otpCheck }

func NewEnableTwoFactorHandler(users UserRepository, attempts LoginAttempts, keyring Keyring, totp TOTP,
	usernames domain.UsernameKey, policy domain.ThrottlePolicy, clock Clock,
) *EnableTwoFactorHandler {
	return &EnableTwoFactorHandler{check: &otpCheck{users, attempts, keyring, totp, usernames, policy, clock}}
}

func (h *EnableTwoFactorHandler) Handle(ctx context.Context, code domain.Secret) error {
	return h.check.run(ctx, "enable", code, func(u *domain.User, _ *Credentials, now time.Time) error {
		return u.EnableTwoFactor(now)
	})
}

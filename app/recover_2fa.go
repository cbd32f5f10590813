package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// RecoverTwoFactorHandler is the administrator's way out for a user who lost
// their authenticator: it removes 2FA without a code (auth.2fa.disabled with
// recovery true). Only the CLI, which holds database access, offers it.
type RecoverTwoFactorHandler struct {
	users UserRepository
	clock Clock
}

func NewRecoverTwoFactorHandler(users UserRepository, clock Clock) *RecoverTwoFactorHandler {
	return &RecoverTwoFactorHandler{users: users, clock: clock}
}

func (h *RecoverTwoFactorHandler) Handle(ctx context.Context, email string) error {
	acct, err := h.users.FindByEmail(ctx, domain.NormalizeEmail(email))
	if err != nil {
		return err
	}
	return h.users.Update(ctx, acct.ID, func(u *domain.User, c *Credentials) error {
		if err := u.DisableTwoFactor(h.clock.Now(), true); err != nil {
			return err
		}
		c.TOTP = nil
		return nil
	})
}

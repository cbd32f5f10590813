package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// RecoverTwoFactorHandler is the administrator's way out for a user who lost
// their authenticator: it removes 2FA without a code (auth.2fa.disabled with
// recovery true). Only the CLI, which holds database access, offers it.
type RecoverTwoFactorHandler struct {
	users UserRepository
	now   func() time.Time
}

func NewRecoverTwoFactorHandler(users UserRepository, now func() time.Time) *RecoverTwoFactorHandler {
	return &RecoverTwoFactorHandler{users: users, now: now}
}

func (h *RecoverTwoFactorHandler) Handle(ctx context.Context, email string) error {
	acct, err := h.users.FindByEmail(ctx, domain.NormalizeEmail(email))
	if err != nil {
		return err
	}
	return h.users.Update(ctx, acct.ID, func(u *domain.User, c *Credentials) error {
		if err := u.DisableTwoFactor(h.now(), true); err != nil {
			return err
		}
		c.TOTP = nil
		return nil
	})
}

package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// TwoFactorSetup is a new, not yet active, TOTP enrolment: the seed to put
// in an authenticator app, also as an otpauth:// URL (for a QR code).
type TwoFactorSetup struct {
	Secret     domain.Secret
	OTPAuthURL domain.Secret
}

// SetupTwoFactorHandler stores a pending, encrypted seed (auth.2fa.setup).
// 2FA stays off until EnableTwoFactorHandler sees a valid code.
type SetupTwoFactorHandler struct {
	users   UserRepository
	keyring Keyring
	totp    TOTP
}

func NewSetupTwoFactorHandler(users UserRepository, keyring Keyring, totp TOTP) *SetupTwoFactorHandler {
	return &SetupTwoFactorHandler{users: users, keyring: keyring, totp: totp}
}

func (h *SetupTwoFactorHandler) Handle(ctx context.Context) (TwoFactorSetup, error) {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return TwoFactorSetup{}, errUnauthenticated
	}
	var out TwoFactorSetup
	err := h.users.Update(ctx, c.UserID, func(u *domain.User, cr *Credentials) error {
		if err := u.StartTwoFactorSetup(); err != nil {
			return err
		}
		seed, url, err := h.totp.NewSeed(u.Email().String())
		if err != nil {
			return err
		}
		sealed, err := h.keyring.Seal([]byte(seed.Reveal()), totpBinding(u.ID()))
		if err != nil {
			return err
		}
		cr.TOTP = &TOTPSeed{Sealed: sealed}
		out = TwoFactorSetup{Secret: seed, OTPAuthURL: url}
		return nil
	})
	return out, err
}

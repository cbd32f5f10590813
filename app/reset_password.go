package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// ResetPassword sets a user's password (CLI). With no Password, a strong
// one is generated and returned once.
type ResetPassword struct {
	Email    string
	Password domain.Secret
}

type ResetPasswordHandler struct {
	users  UserRepository
	hasher PasswordHasher
	clock  Clock
}

func NewResetPasswordHandler(users UserRepository, hasher PasswordHasher, clock Clock) *ResetPasswordHandler {
	return &ResetPasswordHandler{users: users, hasher: hasher, clock: clock}
}

// Handle returns the generated password, if any. Every token the user held
// stops working.
func (h *ResetPasswordHandler) Handle(ctx context.Context, cmd ResetPassword) (generated domain.Secret, err error) {
	password, generated, err := passwordOrGenerated(cmd.Password)
	if err != nil {
		return domain.Secret{}, err
	}
	acct, err := h.users.FindByEmail(ctx, domain.NormalizeEmail(cmd.Email))
	if err != nil {
		return domain.Secret{}, err
	}
	// Hash before the update's transaction: no row lock held while it runs.
	hash, err := h.hasher.Hash(ctx, password)
	if err != nil {
		return domain.Secret{}, err
	}
	err = h.users.Update(ctx, acct.ID, func(u *domain.User, c *Credentials) error {
		u.ChangePassword(h.clock.Now())
		c.PasswordHash = hash
		return nil
	})
	return generated, err
}

package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// ChangeRole sets a user's role (CLI).
type ChangeRole struct {
	Email string
	Role  string
}

type ChangeRoleHandler struct{ users UserRepository }

func NewChangeRoleHandler(users UserRepository) *ChangeRoleHandler {
	return &ChangeRoleHandler{users: users}
}

func (h *ChangeRoleHandler) Handle(ctx context.Context, cmd ChangeRole) error {
	role, err := domain.ParseRole(cmd.Role)
	if err != nil {
		return err
	}
	acct, err := h.users.FindByEmail(ctx, domain.NormalizeEmail(cmd.Email))
	if err != nil {
		return err
	}
	return h.users.Update(ctx, acct.ID, func(u *domain.User, _ *Credentials) error { return u.ChangeRole(role) })
}

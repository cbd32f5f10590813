package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// LogoutHandler revokes every token of the caller (auth.logout).
type LogoutHandler struct {
	users UserRepository
	clock Clock
}

func NewLogoutHandler(users UserRepository, clock Clock) *LogoutHandler {
	return &LogoutHandler{users: users, clock: clock}
}

func (h *LogoutHandler) Handle(ctx context.Context) error {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return errUnauthenticated
	}
	return h.users.Update(ctx, c.UserID, func(u *domain.User, _ *Credentials) error {
		u.Logout(h.clock.Now())
		return nil
	})
}

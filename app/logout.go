package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// LogoutHandler revokes every token of the caller (auth.logout).
type LogoutHandler struct {
	users UserRepository
	now   func() time.Time
}

func NewLogoutHandler(users UserRepository, now func() time.Time) *LogoutHandler {
	return &LogoutHandler{users: users, now: now}
}

func (h *LogoutHandler) Handle(ctx context.Context) error {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return errUnauthenticated
	}
	return h.users.Update(ctx, c.UserID, func(u *domain.User, _ *Credentials) error {
		u.Logout(h.now())
		return nil
	})
}

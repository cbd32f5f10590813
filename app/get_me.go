package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// GetMeHandler returns the authenticated caller's own user.
type GetMeHandler struct{ users UserRepository }

func NewGetMeHandler(users UserRepository) *GetMeHandler { return &GetMeHandler{users: users} }

func (h *GetMeHandler) Handle(ctx context.Context) (UserView, error) {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return UserView{}, errUnauthenticated
	}
	u, err := h.users.Get(ctx, c.UserID)
	if domain.ErrorKind(err) == domain.KindNotFound {
		return UserView{}, errUnauthenticated // deleted since the token was checked
	}
	return u, err
}

package app

import "context"

// ListUsersHandler lists every user, by email.
type ListUsersHandler struct{ users UserRepository }

func NewListUsersHandler(users UserRepository) *ListUsersHandler {
	return &ListUsersHandler{users: users}
}

func (h *ListUsersHandler) Handle(ctx context.Context) ([]UserView, error) { return h.users.List(ctx) }

package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// DemoAdminEmail is the admin `serve --dev` creates in an empty database.
const DemoAdminEmail = "admin@tradeops.local"

// SeedDemoUsersHandler gives `make run` something to log in with.
type SeedDemoUsersHandler struct {
	users  UserRepository
	create *CreateUserHandler
}

func NewSeedDemoUsersHandler(users UserRepository, create *CreateUserHandler) *SeedDemoUsersHandler {
	return &SeedDemoUsersHandler{users: users, create: create}
}

// Handle creates, when no user exists, the demo admin and one operator per
// bound risk profile, with generated passwords it returns (once). Binding
// the profiles is BindRiskProfilesHandler's job.
func (h *SeedDemoUsersHandler) Handle(ctx context.Context, binding RiskProfileBinding) ([]CreatedUser, error) {
	existing, err := h.users.List(ctx)
	if err != nil || len(existing) > 0 {
		return nil, err
	}
	cmds := []CreateUser{{Email: DemoAdminEmail, Role: string(domain.RoleAdmin)}}
	for email := range binding {
		cmds = append(cmds, CreateUser{Email: email, Role: string(domain.RoleOperator)})
	}
	var out []CreatedUser
	for _, cmd := range cmds {
		u, err := h.create.Handle(ctx, cmd)
		if domain.ErrorKind(err) == domain.KindConflict {
			continue // another replica seeded concurrently
		}
		if err != nil {
			return out, err
		}
		out = append(out, u)
	}
	return out, nil
}

package app

import (
	"context"
	"fmt"

	"github.com/tradeops/tradeops/domain"
)

// RiskProfileBinding names, by email, the users configuration puts on a
// profile (RISK_PROFILE_MODEL2_EMAIL, RISK_PROFILE_LOOSE_EMAIL). Everyone
// else gets the default.
type RiskProfileBinding map[string]domain.RiskProfile

// BindRiskProfilesHandler applies the binding at serve start.
type BindRiskProfilesHandler struct{ users UserRepository }

func NewBindRiskProfilesHandler(users UserRepository) *BindRiskProfilesHandler {
	return &BindRiskProfilesHandler{users: users}
}

// Handle gives every user their configured profile, recording
// user.risk_profile.assigned only for those whose profile changes. It
// returns the bound emails that name no user (yet).
func (h *BindRiskProfilesHandler) Handle(ctx context.Context, binding RiskProfileBinding) (unknown []string, err error) {
	users, err := h.users.List(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, v := range users {
		want, ok := binding[v.Email]
		seen[v.Email] = ok
		if !ok {
			want = domain.DefaultRiskProfile
		}
		if v.RiskProfile == want {
			continue
		}
		if err := h.users.Update(ctx, v.ID, func(u *domain.User, _ *Credentials) error { return u.AssignRiskProfile(want) }); err != nil {
			return nil, fmt.Errorf("assign risk profile %s to %s: %w", want, v.Email, err)
		}
	}
	for email := range binding {
		if !seen[email] {
			unknown = append(unknown, email)
		}
	}
	return unknown, nil
}

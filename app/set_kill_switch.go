package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// KillSwitchState is the risk kill switch as administrators see it.
type KillSwitchState struct {
	Engaged bool
	Reason  string
	// ChangedBy (a user id) and ChangedAt are zero before the first change.
	ChangedBy string
	ChangedAt time.Time
}

// KillSwitchRepository stores the kill switch with the events that change
// it. Every execution decision reads the switch in its own transaction
// (Executions.Decide), so a change applies to the next decision.
type KillSwitchRepository interface {
	Get(ctx context.Context) (KillSwitchState, error)
	// Update locks the switch, gives it to set and, when set returns an
	// event, stores the new state and appends the event in one
	// transaction. It returns the state after.
	Update(ctx context.Context, set func(domain.KillSwitch) (domain.KillSwitch, *domain.Event, error)) (KillSwitchState, error)
}

// SetKillSwitch engages (halts every order under every profile) or
// releases the risk kill switch, with the administrator's reason.
type SetKillSwitch struct {
	Engaged bool
	Reason  string
}

type SetKillSwitchHandler struct{ repo KillSwitchRepository }

func NewSetKillSwitchHandler(repo KillSwitchRepository) *SetKillSwitchHandler {
	return &SetKillSwitchHandler{repo: repo}
}

// Handle sets the switch; setting it to where it already is records
// nothing and keeps the first reason.
func (h *SetKillSwitchHandler) Handle(ctx context.Context, cmd SetKillSwitch) (KillSwitchState, error) {
	if CallerFrom(ctx).UserID == "" {
		return KillSwitchState{}, errUnauthenticated
	}
	return h.repo.Update(ctx, func(k domain.KillSwitch) (domain.KillSwitch, *domain.Event, error) {
		return k.Set(cmd.Engaged, cmd.Reason)
	})
}

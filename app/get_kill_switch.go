package app

import "context"

// GetKillSwitchHandler reads the risk kill switch.
type GetKillSwitchHandler struct{ repo KillSwitchRepository }

func NewGetKillSwitchHandler(repo KillSwitchRepository) *GetKillSwitchHandler {
	return &GetKillSwitchHandler{repo: repo}
}

func (h *GetKillSwitchHandler) Handle(ctx context.Context) (KillSwitchState, error) {
	return h.repo.Get(ctx)
}

package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// UnfreezeRotation lifts a rollback's freeze with the incident that
// explains it (CLI: `tradeops keys unfreeze`).
type UnfreezeRotation struct {
	Incident, Reason string
	Operator         string // user@host
}

// UnfreezeRotationHandler records security.key_rotation.unfrozen.
type UnfreezeRotationHandler struct{ rotations KeyRotations }

func NewUnfreezeRotationHandler(rotations KeyRotations) *UnfreezeRotationHandler {
	return &UnfreezeRotationHandler{rotations: rotations}
}

func (h *UnfreezeRotationHandler) Handle(ctx context.Context, cmd UnfreezeRotation) error {
	return h.rotations.Update(ctx, func(k *domain.KeyRotation) error {
		return k.Unfreeze(cmd.Incident, cmd.Reason, cmd.Operator)
	})
}

package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// RecordKeyRollbackHandler runs when a server starts: against the latest
// applied rotation, the first start under its new key records
// security.key_rotation.activated, and a later start under its old key — the
// runbook's rollback — records security.key_rotation.rollback, which
// freezes rotation until UnfreezeRotationHandler records the incident.
type RecordKeyRollbackHandler struct {
	rotations KeyRotations
	keyring   Keyring
}

func NewRecordKeyRollbackHandler(rotations KeyRotations, keyring Keyring) *RecordKeyRollbackHandler {
	return &RecordKeyRollbackHandler{rotations: rotations, keyring: keyring}
}

// Handle returns the rollback it recorded, or nil. host names the server.
// Replicas starting together record it once.
func (h *RecordKeyRollbackHandler) Handle(ctx context.Context, host string) (*domain.KeyRotationRolledBack, error) {
	var rb *domain.KeyRotationRolledBack
	err := h.rotations.Update(ctx, func(k *domain.KeyRotation) error {
		rb = k.ServerStarted(h.keyring.KeyID(), host)
		return nil
	})
	return rb, err
}

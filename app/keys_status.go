package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// KeysStatus is what `tradeops keys status` shows.
type KeysStatus struct {
	Census SealedCensus
	// ServerKeyID is the key id of this process's ENCRYPTION_KEY (empty
	// when it has none).
	ServerKeyID string
	LastApply   *domain.KeysReencrypted
	Frozen      *domain.KeyRotationRolledBack
}

// KeysStatusHandler counts the sealed values under each key id, so an
// operator sees before restarting with a new key that nothing lacks it, and
// reports the rotation state.
type KeysStatusHandler struct {
	values      SealedValues
	rotations   KeyRotations
	serverKeyID string
}

func NewKeysStatusHandler(values SealedValues, rotations KeyRotations, serverKeyID string) *KeysStatusHandler {
	return &KeysStatusHandler{values: values, rotations: rotations, serverKeyID: serverKeyID}
}

func (h *KeysStatusHandler) Handle(ctx context.Context) (KeysStatus, error) {
	c, err := h.values.Census(ctx)
	if err != nil {
		return KeysStatus{}, err
	}
	k, err := h.rotations.Load(ctx)
	if err != nil {
		return KeysStatus{}, err
	}
	return KeysStatus{Census: c, ServerKeyID: h.serverKeyID, LastApply: k.LastApply(), Frozen: k.Frozen()}, nil
}

package app

import (
	"context"
	"regexp"

	"github.com/tradeops/tradeops/domain"
)

// PruneKeys drops every ciphertext not under Keep, once the rotation to it
// is confirmed (every server runs under it).
type PruneKeys struct {
	Keep     string // a key id, as `tradeops keys id` prints it
	Operator string // user@host
}

// PruneKeysHandler prunes in one transaction with its
// security.key_rotation.prune event, under the rotation lock. It refuses
// while any value lacks a ciphertext under the kept key (it would become
// unreadable) and while a rollback froze rotation.
type PruneKeysHandler struct {
	values SealedValues
	lock   RotationLock
}

func NewPruneKeysHandler(values SealedValues, lock RotationLock) *PruneKeysHandler {
	return &PruneKeysHandler{values: values, lock: lock}
}

// keyIDPattern is a key id: 8 bytes in lower-case hex.
var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

var errInvalidKeyID = domain.Errorf(domain.KindInvalid, "invalid_key_id", "a key id is 16 lower-case hex digits, as `tradeops keys id` prints it")

func (h *PruneKeysHandler) Handle(ctx context.Context, cmd PruneKeys) (domain.KeysPruned, error) {
	if !keyIDPattern.MatchString(cmd.Keep) {
		return domain.KeysPruned{}, errInvalidKeyID
	}
	release, err := h.lock.TryLock(ctx)
	if err != nil {
		return domain.KeysPruned{}, err
	}
	defer release()
	out := domain.KeysPruned{KeptKeyID: cmd.Keep, Dropped: map[string]int{}, Operator: cmd.Operator}
	err = h.values.Prune(ctx, cmd.Keep, func(k *domain.KeyRotation, c SealedCensus) error {
		if err := k.CheckChange(); err != nil {
			return err
		}
		if n := c.Lacking(cmd.Keep); n > 0 {
			return domain.Errorf(domain.KindConflict, "keys_missing",
				"%d of %d sealed values have no ciphertext under key id %s: reencrypt to that key first (see `tradeops keys status`)", n, c.Values, cmd.Keep)
		}
		out.Values = c.Values
		for id, n := range c.ByKeyID {
			if id != cmd.Keep && n > 0 {
				out.Dropped[id] = n
			}
		}
		if len(out.Dropped) > 0 {
			k.RecordPrune(out)
		}
		return nil
	})
	return out, err
}

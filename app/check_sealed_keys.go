package app

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CheckSealedKeysHandler compares the stored sealed values — TOTP seeds
// and exchange secrets, counted by the same census key rotation reports —
// with the running key at start: a server whose ENCRYPTION_KEY opens none
// of them was given the wrong key, and would fail every 2FA login and
// exchange call.
type CheckSealedKeysHandler struct {
	values SealedValues
	keyID  string
}

func NewCheckSealedKeysHandler(values SealedValues, keyID string) *CheckSealedKeysHandler {
	return &CheckSealedKeysHandler{values: values, keyID: keyID}
}

// SealedKeyReport is what CheckSealedKeysHandler found.
type SealedKeyReport struct {
	KeyID  string // the running key's id
	Census SealedCensus
}

// Handle counts the stored values; an error is the census's (the
// database's), never the verdict, which the report gives.
func (h *CheckSealedKeysHandler) Handle(ctx context.Context) (SealedKeyReport, error) {
	c, err := h.values.Census(ctx)
	if err != nil {
		return SealedKeyReport{}, err
	}
	return SealedKeyReport{KeyID: h.keyID, Census: c}, nil
}

// Values is the number of stored values; unopenable the number with no
// ciphertext under the running key.
func (r SealedKeyReport) Values() (values, unopenable int) {
	return r.Census.Values, r.Census.Lacking(r.KeyID)
}

// NoneOpenable reports that values are stored and the running key opens
// none of them: the server must not start.
func (r SealedKeyReport) NoneOpenable() bool {
	values, unopenable := r.Values()
	return values > 0 && unopenable == values
}

// Partial reports that the running key opens some stored values but not all.
func (r SealedKeyReport) Partial() bool {
	values, unopenable := r.Values()
	return unopenable > 0 && unopenable < values
}

// KeyIDs lists the stored key ids in order, with how many values hold a
// ciphertext under each: "a1b2… (3 values), c3d4… (1 value)". Key ids are
// safe to show; they reveal nothing of a key.
func (r SealedKeyReport) KeyIDs() string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(r.Census.ByKeyID)) {
		n := r.Census.ByKeyID[id]
		unit := "values"
		if n == 1 {
			unit = "value"
		}
		parts = append(parts, fmt.Sprintf("%s (%d %s)", id, n, unit))
	}
	return strings.Join(parts, ", ")
}

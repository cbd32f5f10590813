package app

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SealedCount describes the stored values of one kind (TOTP seeds,
// exchange secrets, ...) by the key ids they hold ciphertexts under.
type SealedCount struct {
	Kind   string
	Values int
	// ByKeyID counts, per key id, the values holding a ciphertext under it
	// (a value being rotated counts under each of its keys).
	ByKeyID map[string]int
}

// SealedInventory counts every stored sealed value, of every kind the
// keyring protects.
type SealedInventory interface {
	CountSealed(ctx context.Context) ([]SealedCount, error)
}

// CheckSealedKeysHandler compares the stored sealed values with the running
// key at start: a server whose ENCRYPTION_KEY opens none of them was given
// the wrong key, and would fail every 2FA login and exchange call.
type CheckSealedKeysHandler struct {
	inventory SealedInventory
	keyID     string
}

func NewCheckSealedKeysHandler(inventory SealedInventory, keyID string) *CheckSealedKeysHandler {
	return &CheckSealedKeysHandler{inventory: inventory, keyID: keyID}
}

// SealedKeyReport is what CheckSealedKeysHandler found.
type SealedKeyReport struct {
	KeyID  string // the running key's id
	Counts []SealedCount
}

// Handle counts the stored values; an error is the inventory's (the
// database's), never the verdict, which the report gives.
func (h *CheckSealedKeysHandler) Handle(ctx context.Context) (SealedKeyReport, error) {
	counts, err := h.inventory.CountSealed(ctx)
	if err != nil {
		return SealedKeyReport{}, fmt.Errorf("count sealed values: %w", err)
	}
	return SealedKeyReport{KeyID: h.keyID, Counts: counts}, nil
}

// Values is the number of stored values; Unopenable the number with no
// ciphertext under the running key.
func (r SealedKeyReport) Values() (values, unopenable int) {
	for _, c := range r.Counts {
		values += c.Values
		unopenable += c.Values - c.ByKeyID[r.KeyID]
	}
	return values, unopenable
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

// KeyIDs lists the stored key ids in order, with how many values of which
// kind hold a ciphertext under each: "a1b2… (3 totp_seed), c3d4… (1 totp_seed)".
// Key ids are safe to show; they reveal nothing of a key.
func (r SealedKeyReport) KeyIDs() string {
	per := map[string][]string{}
	for _, c := range r.Counts {
		for id, n := range c.ByKeyID {
			per[id] = append(per[id], fmt.Sprintf("%d %s", n, c.Kind))
		}
	}
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(per)) {
		parts = append(parts, fmt.Sprintf("%s (%s)", id, strings.Join(per[id], ", ")))
	}
	return strings.Join(parts, ", ")
}

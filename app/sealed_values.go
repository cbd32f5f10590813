package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// This file holds the ports of key rotation: every sealed value the keyring
// protects, read and extended in batches without going through the
// repositories that own them (the user repository writes nothing unless an
// event is recorded, and rotation records one event per run, not per
// value); the keyring stream; and the one-rotation-at-a-time lock.

// SealedRecord is one stored row of sealed values: a user's TOTP seed
// (Purpose TOTPPurpose, one field TOTPField), or a user's credentials for
// one exchange (Purpose = the exchange, one value per field).
type SealedRecord struct {
	Owner   string // user id
	Purpose string
	Values  map[string]Sealed // field -> sealed value
}

// SealedCursor is a place in the order SealedValues lists records in:
// (owner, purpose).
type SealedCursor struct{ Owner, Purpose string }

// SealedAddition adds ciphertexts under KeyID to one record, as it was read.
type SealedAddition struct {
	Record SealedRecord
	KeyID  string
	Add    map[string][]byte // field -> ciphertext under KeyID
}

// SealedCensus counts sealed values by the key ids they hold ciphertexts under.
type SealedCensus struct {
	Values  int            // every sealed value (TOTP seeds and credential fields)
	ByKeyID map[string]int // values holding a ciphertext under each key id
}

// Lacking is how many values hold no ciphertext under keyID.
func (c SealedCensus) Lacking(keyID string) int { return c.Values - c.ByKeyID[keyID] }

// SealedValues reads and extends every sealed value: exchange credential
// fields and TOTP seeds.
type SealedValues interface {
	// Records returns up to limit records after `after` (nil: from the
	// start), in (owner, purpose) order.
	Records(ctx context.Context, after *SealedCursor, limit int) ([]SealedRecord, error)
	// AddCiphertexts writes the additions in one transaction. A record
	// whose stored values no longer equal the ones read (a user replaced
	// or deleted them meanwhile) is left untouched: its index is returned
	// in changed, and a rerun covers it.
	AddCiphertexts(ctx context.Context, adds []SealedAddition) (changed []int, err error)
	// Census counts the values per key id.
	Census(ctx context.Context) (SealedCensus, error)
	// Prune drops every ciphertext not under keep, in one transaction that
	// also loads the keyring stream and appends what decide recorded on it;
	// decide sees the census before the prune and refuses by returning an
	// error (then nothing changes). Values lacking keep are never touched.
	Prune(ctx context.Context, keep string, decide func(k *domain.KeyRotation, before SealedCensus) error) error
}

// KeyRotations stores the rotation state (domain.KeyRotation) in the
// keyring stream.
type KeyRotations interface {
	Load(ctx context.Context) (*domain.KeyRotation, error)
	// Update loads the state, lets fn record events and appends them at the
	// loaded version (reloading and retrying when another process appended
	// meanwhile). An error from fn is returned as is.
	Update(ctx context.Context, fn func(k *domain.KeyRotation) error) error
}

// RotationLock lets one rotation (reencrypt or prune) run at a time across
// processes.
type RotationLock interface {
	// TryLock takes the lock or fails at once with ErrRotationInProgress.
	TryLock(ctx context.Context) (release func(), err error)
}

// ErrRotationInProgress is what RotationLock.TryLock returns when another
// rotation holds the lock.
var ErrRotationInProgress = domain.Errorf(domain.KindConflict, "rotation_in_progress",
	"another key rotation (reencrypt or prune) is running, here or on another replica; retry when it is done")

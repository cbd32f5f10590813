package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tradeops/tradeops/domain"
)

// ReencryptSecrets re-encrypts every sealed value from OldKey to NewKey.
// The keys never leave this struct but to build keyrings: they are never
// logged, recorded or echoed.
type ReencryptSecrets struct {
	OldKey, NewKey domain.Secret
	DryRun         bool
	// Operator is who ran it from the CLI (user@host); empty over HTTP,
	// where the caller is in the event's metadata.
	Operator string
}

// SealedFailure is a value a reencrypt could not cover, and why (key ids,
// never key material).
type SealedFailure struct {
	Owner, Purpose, Field, Error string
}

// MaxReportedFailures bounds the failures a result lists; FailedCount has
// them all.
const MaxReportedFailures = 100

// ReencryptResult is what a reencrypt did (or, dry, would do), per value.
type ReencryptResult struct {
	DryRun bool
	// Scanned counts every sealed value; Updated those that got (or would
	// get) a ciphertext under the new key; AlreadyCurrent those holding one
	// that decrypts already.
	Scanned, Updated, AlreadyCurrent int
	Failed                           []SealedFailure
	FailedCount                      int
	OldKeyID, NewKeyID, ServerKeyID  string
}

// ReencryptSecretsHandler runs a rotation's reencrypt (DESIGN §4): for
// every value, open the ciphertext under the old key, seal the plaintext
// under the new key, open that again and compare. A dry run writes nothing;
// an apply adds the new ciphertext beside the old one, a batch of records
// per transaction, so servers under either key keep working and an
// interrupted apply resumes where a rerun finds values still lacking the
// new key. One rotation runs at a time (RotationLock); an apply is refused
// while a rollback froze rotation. Every run, dry or not, finished or not,
// records security.key_rotation.reencrypt.
type ReencryptSecretsHandler struct {
	values      SealedValues
	rotations   KeyRotations
	lock        RotationLock
	newKeyring  KeyringFactory
	serverKeyID string // empty when the process has no ENCRYPTION_KEY (CLI)
	batch       int
}

// DefaultReencryptBatch is the number of records per transaction.
const DefaultReencryptBatch = 500

func NewReencryptSecretsHandler(values SealedValues, rotations KeyRotations, lock RotationLock, newKeyring KeyringFactory, serverKeyID string, batch int) *ReencryptSecretsHandler {
	if batch <= 0 {
		batch = DefaultReencryptBatch
	}
	return &ReencryptSecretsHandler{values: values, rotations: rotations, lock: lock, newKeyring: newKeyring, serverKeyID: serverKeyID, batch: batch}
}

func (h *ReencryptSecretsHandler) Handle(ctx context.Context, cmd ReencryptSecrets) (ReencryptResult, error) {
	oldK, err := h.keyring(domain.DecodeEncryptionKey("old_key", cmd.OldKey))
	if err != nil {
		return ReencryptResult{}, err
	}
	newK, err := h.keyring(domain.ParseEncryptionKey("new_key", cmd.NewKey))
	if err != nil {
		return ReencryptResult{}, err
	}
	if oldK.KeyID() == newK.KeyID() {
		return ReencryptResult{}, domain.Errorf(domain.KindInvalid, "same_key", "old_key and new_key are the same key (key id %s)", oldK.KeyID())
	}
	res := ReencryptResult{DryRun: cmd.DryRun, OldKeyID: oldK.KeyID(), NewKeyID: newK.KeyID(), ServerKeyID: h.serverKeyID}
	release, err := h.lock.TryLock(ctx)
	if err != nil {
		return res, res.withKeyIDs(err)
	}
	defer release()
	if !cmd.DryRun {
		state, err := h.rotations.Load(ctx)
		if err != nil {
			return res, err
		}
		if err := state.CheckChange(); err != nil {
			return res, res.withKeyIDs(err)
		}
	}
	runErr := h.run(ctx, oldK, newK, cmd.DryRun, &res)
	// Recorded even when the run stopped half-way (the client may be gone,
	// the context cancelled): what was written must be on record.
	recErr := h.rotations.Update(context.WithoutCancel(ctx), func(k *domain.KeyRotation) error {
		k.RecordReencrypt(domain.KeysReencrypted{DryRun: cmd.DryRun, Completed: runErr == nil, Scanned: res.Scanned, Updated: res.Updated,
			AlreadyCurrent: res.AlreadyCurrent, Failed: res.FailedCount, OldKeyID: res.OldKeyID, NewKeyID: res.NewKeyID,
			ServerKeyID: res.ServerKeyID, Operator: cmd.Operator})
		return nil
	})
	if runErr != nil {
		return res, res.withKeyIDs(domain.Wrap(runErr, domain.KindUnavailable, "reencrypt_interrupted",
			fmt.Sprintf("the reencrypt stopped after %d values; rerun it to resume", res.Scanned)))
	}
	return res, recErr
}

// withKeyIDs names the keys of the request in a classified error's
// message, so that every answer tells the operator which key is which.
func (r ReencryptResult) withKeyIDs(err error) error {
	var e *domain.Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	c.Err = err // errors.Is still finds the original
	c.Message += fmt.Sprintf(" (old key id %s, new key id %s", r.OldKeyID, r.NewKeyID)
	if r.ServerKeyID != "" {
		c.Message += ", this server's key id " + r.ServerKeyID
	}
	c.Message += ")"
	return &c
}

// keyring builds a keyring from a parsed key: the old key is only decoded
// (moving off a weak key must stay possible), the new one must be strong.
func (h *ReencryptSecretsHandler) keyring(raw []byte, err error) (Keyring, error) {
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return h.newKeyring(raw)
}

// run walks every record a batch at a time. Counts reach res only once a
// batch is written, so an interrupted apply reports what it did.
func (h *ReencryptSecretsHandler) run(ctx context.Context, oldK, newK Keyring, dryRun bool, res *ReencryptResult) error {
	var after *SealedCursor
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, err := h.values.Records(ctx, after, h.batch)
		if err != nil {
			return err
		}
		var (
			b    batchResult
			adds []SealedAddition
		)
		for _, rec := range recs {
			add := map[string][]byte{}
			for _, field := range slices.Sorted(maps.Keys(rec.Values)) {
				bind := SecretBinding{Owner: rec.Owner, Purpose: rec.Purpose, Field: field}
				ct, current, err := reencryptValue(oldK, newK, rec.Values[field], bind)
				b.scanned++
				switch {
				case err != nil:
					b.failed = append(b.failed, SealedFailure{Owner: rec.Owner, Purpose: rec.Purpose, Field: field, Error: err.Error()})
				case current:
					b.current++
				default:
					add[field] = ct
				}
			}
			if len(add) > 0 {
				adds = append(adds, SealedAddition{Record: rec, KeyID: newK.KeyID(), Add: add})
			}
		}
		for _, a := range adds {
			b.updated += len(a.Add)
		}
		if !dryRun && len(adds) > 0 {
			changed, err := h.values.AddCiphertexts(ctx, adds)
			if err != nil {
				return err
			}
			for _, i := range changed {
				a := adds[i]
				b.updated -= len(a.Add)
				for _, field := range slices.Sorted(maps.Keys(a.Add)) {
					b.failed = append(b.failed, SealedFailure{Owner: a.Record.Owner, Purpose: a.Record.Purpose, Field: field, Error: errChangedMeanwhile})
				}
			}
		}
		b.addTo(res)
		if len(recs) < h.batch {
			return nil
		}
		last := recs[len(recs)-1]
		after = &SealedCursor{Owner: last.Owner, Purpose: last.Purpose}
	}
}

const errChangedMeanwhile = "stored again by its owner while the reencrypt ran; rerun the reencrypt to cover it"

type batchResult struct {
	scanned, updated, current int
	failed                    []SealedFailure
}

func (b batchResult) addTo(res *ReencryptResult) {
	res.Scanned += b.scanned
	res.Updated += b.updated
	res.AlreadyCurrent += b.current
	res.FailedCount += len(b.failed)
	if room := MaxReportedFailures - len(res.Failed); room > 0 {
		res.Failed = append(res.Failed, b.failed[:min(room, len(b.failed))]...)
	}
}

// reencryptValue returns the ciphertext under the new key for one value, or
// current when it holds a good one already. Errors name key ids only.
func reencryptValue(oldK, newK Keyring, s Sealed, b SecretBinding) (ct []byte, current bool, err error) {
	if _, ok := s[newK.KeyID()]; ok {
		if plain, err := newK.Open(s, b); err == nil {
			clear(plain)
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("its ciphertext under the new key id %s does not decrypt with new_key (altered, or moved from another row)", newK.KeyID())
	}
	if _, ok := s[oldK.KeyID()]; !ok {
		return nil, false, fmt.Errorf("it has no ciphertext under the old key id %s nor the new key id %s (it has key id(s) [%s])",
			oldK.KeyID(), newK.KeyID(), strings.Join(s.KeyIDs(), ", "))
	}
	plain, err := oldK.Open(s, b)
	if err != nil {
		return nil, false, fmt.Errorf("its ciphertext under the old key id %s does not decrypt with old_key (altered, or moved from another row)", oldK.KeyID())
	}
	defer clear(plain)
	sealed, err := newK.Seal(plain, b)
	if err != nil {
		return nil, false, err
	}
	back, err := newK.Open(sealed, b)
	if err != nil || !bytes.Equal(back, plain) {
		return nil, false, errors.New("verification failed: the new ciphertext does not decrypt to the same value")
	}
	clear(back)
	return sealed[newK.KeyID()], false, nil
}

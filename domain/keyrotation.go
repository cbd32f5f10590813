package domain

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KeyringStream is the stream of key rotation events.
const KeyringStream = "keyring"

// keyRotationEventsVersion is the schema version of the payloads below.
const keyRotationEventsVersion = 1

// Key rotation payloads: key ids and counts, never a key or a ciphertext.
// Operator is who ran a CLI command (user@host); Host is where a server
// started.
type (
	// KeysReencrypted records a reencrypt run, dry runs included. Completed
	// is false when the run stopped before the end (cancelled, database
	// lost); an apply is resumable, so a rerun finishes it.
	KeysReencrypted struct {
		DryRun         bool   `json:"dry_run"`
		Completed      bool   `json:"completed"`
		Scanned        int    `json:"scanned"`
		Updated        int    `json:"updated"`
		AlreadyCurrent int    `json:"already_current"`
		Failed         int    `json:"failed"`
		OldKeyID       string `json:"old_key_id"`
		NewKeyID       string `json:"new_key_id"`
		ServerKeyID    string `json:"server_key_id,omitempty"`
		Operator       string `json:"operator,omitempty"`
	}
	KeysPruned struct {
		KeptKeyID string `json:"kept_key_id"`
		// Values is how many sealed values there were; Dropped counts the
		// ciphertexts removed per key id.
		Values   int            `json:"values"`
		Dropped  map[string]int `json:"dropped"`
		Operator string         `json:"operator,omitempty"`
	}
	KeyRotationActivated struct {
		KeyID         string `json:"key_id"`
		PreviousKeyID string `json:"previous_key_id"`
		Host          string `json:"host"`
	}
	KeyRotationRolledBack struct {
		// FromKeyID is the key the rotation moved to; ToKeyID the one it
		// moved away from, which a server started under again.
		FromKeyID string `json:"from_key_id"`
		ToKeyID   string `json:"to_key_id"`
		Host      string `json:"host"`
	}
	KeyRotationUnfrozen struct {
		Incident string `json:"incident"`
		Reason   string `json:"reason"`
		Operator string `json:"operator,omitempty"`
	}
)

// KeyRotation is the state of key rotation, folded from the keyring
// stream: the latest applied rotation, which of its keys servers last
// started under, and whether a rollback froze rotation.
type KeyRotation struct {
	lastApply *KeysReencrypted
	// liveKeyID is the key of the latest applied rotation servers last
	// started under: its old key until one starts under the new key.
	liveKeyID string
	frozen    *KeyRotationRolledBack
	version   int64
	changes   []Event
}

// LoadKeyRotation folds the keyring stream, oldest event first (an empty
// stream is a keyring that never rotated).
func LoadKeyRotation(history []StoredEvent) (*KeyRotation, error) {
	k := &KeyRotation{}
	for i, e := range history {
		data, err := decodeKeyRotation(e)
		if err != nil {
			return nil, fmt.Errorf("keyring stream event %d (%s): %w", i+1, e.Type, err)
		}
		k.apply(data)
		k.version++
	}
	return k, nil
}

func decodeKeyRotation(e StoredEvent) (any, error) {
	switch e.Type {
	case EventKeyRotationReencrypt:
		return decodeAt[KeysReencrypted](e, keyRotationEventsVersion)
	case EventKeyRotationPrune:
		return decodeAt[KeysPruned](e, keyRotationEventsVersion)
	case EventKeyRotationActivated:
		return decodeAt[KeyRotationActivated](e, keyRotationEventsVersion)
	case EventKeyRotationRollback:
		return decodeAt[KeyRotationRolledBack](e, keyRotationEventsVersion)
	case EventKeyRotationUnfrozen:
		return decodeAt[KeyRotationUnfrozen](e, keyRotationEventsVersion)
	}
	return nil, nil
}

// Version is the stream version the state was loaded at.
func (k *KeyRotation) Version() int64 { return k.version }

// Changes are the events recorded since loading.
func (k *KeyRotation) Changes() []Event { return k.changes }

// Frozen returns the rollback that froze rotation, or nil.
func (k *KeyRotation) Frozen() *KeyRotationRolledBack { return k.frozen }

// LastApply returns the latest applied (not dry-run) reencrypt, or nil.
func (k *KeyRotation) LastApply() *KeysReencrypted { return k.lastApply }

// CheckChange refuses a change of the stored keys (an applied reencrypt, a
// prune) while a rollback is unexplained: the runbook blocks new changes
// until the incident's RCA. Dry runs are not changes.
func (k *KeyRotation) CheckChange() error {
	if f := k.frozen; f != nil {
		return Errorf(KindConflict, "rotation_frozen",
			"key rotation is frozen: a server started again under key id %s after the rotation to key id %s (rollback on %s); "+
				"record the incident with `tradeops keys unfreeze --incident ID --reason TEXT` first", f.ToKeyID, f.FromKeyID, f.Host)
	}
	return nil
}

// RecordReencrypt records a reencrypt run.
func (k *KeyRotation) RecordReencrypt(r KeysReencrypted) { k.record(EventKeyRotationReencrypt, r) }

// RecordPrune records dropped ciphertexts.
func (k *KeyRotation) RecordPrune(p KeysPruned) { k.record(EventKeyRotationPrune, p) }

// ServerStarted records what a server starting under keyID on host means
// for the latest applied rotation: the first start under its new key
// activates it; a later start under its old key is a rollback, which
// freezes rotation. A start under the old key before any under the new one
// (a replica restarted before the switch) is neither. It reports the
// rollback it recorded, if any.
func (k *KeyRotation) ServerStarted(keyID, host string) *KeyRotationRolledBack {
	a := k.lastApply
	switch {
	case a == nil:
	case keyID == a.NewKeyID && k.liveKeyID != a.NewKeyID:
		k.record(EventKeyRotationActivated, KeyRotationActivated{KeyID: keyID, PreviousKeyID: a.OldKeyID, Host: host})
	case keyID == a.OldKeyID && k.liveKeyID == a.NewKeyID:
		rb := KeyRotationRolledBack{FromKeyID: a.NewKeyID, ToKeyID: keyID, Host: host}
		k.record(EventKeyRotationRollback, rb)
		return &rb
	}
	return nil
}

const (
	maxIncidentLength = 64
	maxReasonLength   = 1000
)

// parseReason is an administrator's explanation of a change: 1 to
// maxReasonLength bytes of text once trimmed, lines but no other control
// characters.
func parseReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxReasonLength || !utf8.ValidString(reason) ||
		strings.IndexFunc(reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) >= 0 {
		return "", Errorf(KindInvalid, "invalid_reason", "the reason must be 1 to %d characters of text", maxReasonLength)
	}
	return reason, nil
}

var incidentID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/#-]*$`)

// Unfreeze lifts a rollback's freeze, recording the incident that explains it.
func (k *KeyRotation) Unfreeze(incident, reason, operator string) error {
	if len(incident) > maxIncidentLength || !incidentID.MatchString(incident) {
		return Errorf(KindInvalid, "invalid_incident", "the incident must be an id such as INC-123 (letters, digits, . _ : / # -; at most %d characters)", maxIncidentLength)
	}
	reason, err := parseReason(reason)
	if err != nil {
		return err
	}
	if k.frozen == nil {
		return Errorf(KindConflict, "not_frozen", "key rotation is not frozen; there is nothing to unfreeze")
	}
	k.record(EventKeyRotationUnfrozen, KeyRotationUnfrozen{Incident: incident, Reason: reason, Operator: operator})
	return nil
}

func (k *KeyRotation) record(typ string, data any) {
	k.apply(data)
	k.changes = append(k.changes, Event{Type: typ, SchemaVersion: keyRotationEventsVersion, Data: data})
}

func (k *KeyRotation) apply(data any) {
	switch d := data.(type) {
	case KeysReencrypted:
		if !d.DryRun {
			k.lastApply, k.liveKeyID = &d, d.OldKeyID
		}
	case KeyRotationActivated:
		k.liveKeyID = d.KeyID
	case KeyRotationRolledBack:
		k.liveKeyID, k.frozen = d.ToKeyID, &d
	case KeyRotationUnfrozen:
		k.frozen = nil
	}
}

package domain

import (
	"bytes"
	"encoding/json"
	"strings"
)

// MaxSubjectLen bounds a subject id. User ids are UUIDs (36 bytes); anything
// much longer is not a user id, and an unbounded one could not be indexed.
const MaxSubjectLen = 128

// EventSubject is the user an event is about — whose account it changed or
// tried to use — derived the same way for every event type, so new events
// need no audit code: an event in a user's stream (UserStream) is about that
// user; any other event is about the user its payload names in a top-level
// "user_id" string (a login attempt against an account, a 2FA check). It is
// empty when the event is about no user.
//
// The audit log stores it so that a user's trail shows what happened to the
// account, not only what the user did. Migration 005 derives the same value
// in SQL for rows projected before it existed; keep the two in step.
func EventSubject(stream string, payload []byte) string {
	if id, ok := strings.CutPrefix(stream, UserStream("")); ok && validSubject(id) {
		return id
	}
	// Most payloads name no user: skip decoding them. A \u escape may spell
	// the key in disguise, so it always decodes.
	if !bytes.Contains(payload, []byte(`"user_id"`)) && !bytes.Contains(payload, []byte(`\u`)) {
		return ""
	}
	// A map, not a struct: encoding/json matches struct fields
	// case-insensitively, and "USER_ID" must not count.
	var fields map[string]json.RawMessage
	if json.Unmarshal(payload, &fields) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(fields["user_id"], &id) != nil || !validSubject(id) {
		return ""
	}
	return id
}

func validSubject(id string) bool {
	return id != "" && len(id) <= MaxSubjectLen && !strings.ContainsRune(id, 0)
}

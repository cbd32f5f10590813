package domain

import "encoding/json"

// Event is a change a command recorded, before it is stored: a stable type
// name from the catalogue (events.go) and a payload that marshals to JSON at
// SchemaVersion. Payloads never hold a secret (DESIGN §2).
type Event struct {
	Type          string
	SchemaVersion int
	Data          any
}

// StoredEvent is an event read back from a stream, for rehydrating an
// aggregate. Readers upcast older payloads before they get here.
type StoredEvent struct {
	Type          string
	SchemaVersion int
	Data          json.RawMessage
}

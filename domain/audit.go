package domain

import "encoding/json"

// AuditSealStream holds the audit.reseal events.
const AuditSealStream = "audit-seal"

// auditEventsVersion is the schema version of the audit payloads below.
const auditEventsVersion = 1

// AuditResealed records that the audit hash chain was re-sealed: the head
// it replaced (as `tradeops audit head` exports it) and the operator (OS
// user and host) who ran the command.
type AuditResealed struct {
	Operator     string          `json:"operator"`
	PreviousHead json.RawMessage `json:"previous_head"`
}

// NewAuditResealed is the audit.reseal event.
func NewAuditResealed(previousHead json.RawMessage, operator string) Event {
	return Event{Type: EventAuditReseal, SchemaVersion: auditEventsVersion, Data: AuditResealed{Operator: operator, PreviousHead: previousHead}}
}

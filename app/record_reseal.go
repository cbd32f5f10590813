package app

import (
	"context"
	"encoding/json"

	"github.com/tradeops/tradeops/domain"
)

// RecordReseal records that the audit hash chain is about to be re-sealed
// (`tradeops projections rebuild audit_seal --reseal`), by the caller in ctx.
type RecordReseal struct {
	// PreviousHead is the head being replaced, as `tradeops audit head`
	// exports it.
	PreviousHead json.RawMessage
	// Operator names who ran it on which machine (OS user@host).
	Operator string
}

// EventRecorder appends events that come with no state of their own to
// write, with the metadata of ctx's caller.
type EventRecorder interface {
	Record(ctx context.Context, stream string, events ...domain.Event) error
}

// RecordResealHandler records re-seals.
type RecordResealHandler struct{ events EventRecorder }

func NewRecordResealHandler(events EventRecorder) *RecordResealHandler {
	return &RecordResealHandler{events: events}
}

func (h *RecordResealHandler) Handle(ctx context.Context, cmd RecordReseal) error {
	return h.events.Record(ctx, domain.AuditSealStream, domain.NewAuditResealed(cmd.PreviousHead, cmd.Operator))
}

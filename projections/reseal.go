package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
)

// ResealRecorder records a re-seal as an audit.reseal event by ctx's caller
// (app.RecordResealHandler).
type ResealRecorder interface {
	Handle(ctx context.Context, cmd app.RecordReseal) error
}

// SealRefusedError is returned by Reseal when the existing chain does not
// verify: re-sealing would launder the break.
type SealRefusedError struct{ Break *Break }

func (e *SealRefusedError) Error() string {
	return "refusing to re-seal: the existing chain does not verify: " + e.Break.String()
}

// Reseal rebuilds audit_seal by replay, like Rebuild does other
// projections, but only when the existing chain verifies, and it records
// itself through rec — with the head it replaces and the operator (OS user
// and host) who ran it — before re-sealing, so the new chain covers its own
// creation (or the live runner links it right after, had another
// transaction still hidden it at the swap).
func Reseal(ctx context.Context, pool *pgxpool.Pool, events EventReader, rec ResealRecorder, operator string, opts RebuildOptions) (eventstore.Position, error) {
	rep, err := Verify(ctx, pool, nil)
	if err != nil {
		return eventstore.Position{}, err
	}
	if rep.Break != nil {
		return eventstore.Position{}, &SealRefusedError{Break: rep.Break}
	}
	head, err := json.Marshal(rep.Head)
	if err != nil {
		return eventstore.Position{}, err
	}
	if err := rec.Handle(ctx, app.RecordReseal{PreviousHead: head, Operator: operator}); err != nil {
		return eventstore.Position{}, fmt.Errorf("record the re-seal: %w", err)
	}
	return rebuild(ctx, pool, events, AuditSeal{}, opts)
}

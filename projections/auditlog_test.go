package projections

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tradeops/tradeops/eventstore"
)

// Apply streams its rows into COPY; a payload it cannot redact aborts the
// COPY, and the error must still be the event's DataError (so the runner
// quarantines that event), not the server's answer to the aborted COPY
// (which would be retried as a systemic failure forever).
func TestAuditLogApplyReportsAnUnreadablePayloadAsPoison(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tx, err := env.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the test only reads the error
	good := eventstore.Event{Position: eventstore.Position{TransactionID: 1, Offset: 1}, ID: "good", StreamID: "s", Type: "t",
		Data: []byte(`{"password":"x"}`), RecordedAt: time.Now()}
	bad := good
	bad.Position.Offset, bad.ID, bad.Data = 2, "bad", []byte(`{"password":`)
	err = AuditLog{}.Apply(ctx, tx, liveTables, []eventstore.Event{good, bad})
	var de *DataError
	if !errors.As(err, &de) || de.EventID != "bad" || !isPoison(ctx, err) {
		t.Fatalf("Apply = %v, want the bad event's DataError", err)
	}
}

package app

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

type recorded struct {
	stream string
	events []domain.Event
}

type fakeRecorder struct{ got []recorded }

func (f *fakeRecorder) Record(_ context.Context, stream string, events ...domain.Event) error {
	f.got = append(f.got, recorded{stream, events})
	return nil
}

func TestRecordResealAppendsTheAuditEvent(t *testing.T) {
	rec := &fakeRecorder{}
	head := json.RawMessage(`{"position":"1:2","count":2}`)
	if err := NewRecordResealHandler(rec).Handle(context.Background(), RecordReseal{PreviousHead: head, Operator: "ops@host"}); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 1 || rec.got[0].stream != domain.AuditSealStream || len(rec.got[0].events) != 1 {
		t.Fatalf("recorded %+v", rec.got)
	}
	e := rec.got[0].events[0]
	data, _ := json.Marshal(e.Data)
	if e.Type != domain.EventAuditReseal || e.SchemaVersion != 1 || string(data) != `{"operator":"ops@host","previous_head":{"position":"1:2","count":2}}` {
		t.Fatalf("event %s %d %s", e.Type, e.SchemaVersion, data)
	}
}

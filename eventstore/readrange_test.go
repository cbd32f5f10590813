package eventstore_test

import (
	"encoding/json"
	"testing"

	"github.com/tradeops/tradeops/eventstore"
)

// ReadRange reads (after, upTo] in store order, as stored: the stored
// payload and schema version (no upcaster), the stored metadata bytes, and
// Metadata left undecoded.
func TestReadRangeReadsTheStoredForm(t *testing.T) {
	s := newReplayStore(t)
	seedReplay(t, s)
	waitVisible(t, s, 30)
	upcast := eventstore.New(s.Pool(), eventstore.WithUpcaster("execution.prepare", func(v int, data json.RawMessage) (int, json.RawMessage, error) {
		if v >= 5 {
			return v, data, nil
		}
		return 5, json.RawMessage(`{"upcast":true}`), nil
	}))
	all := readAllEvents(t, upcast, eventstore.Filter{})
	got, err := eventstore.ReadRange(t.Context(), s.Pool(), all[3].Position, all[20].Position, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 17 {
		t.Fatalf("(4th, 21st] holds %d events, want 17", len(got))
	}
	for i, g := range got {
		w := all[4+i]
		if g.Position != w.Position || g.ID != w.ID || g.StreamID != w.StreamID || g.StreamVersion != w.StreamVersion ||
			g.Type != w.Type || !g.RecordedAt.Equal(w.RecordedAt) || g.Metadata != (eventstore.Metadata{}) {
			t.Fatalf("event %d: %+v, want %+v", i, g, w)
		}
		if g.SchemaVersion != w.Stored.SchemaVersion || string(g.Data) != string(w.Stored.Data) ||
			string(g.Stored.Data) != string(w.Stored.Data) || string(g.Stored.Metadata) != string(w.Stored.Metadata) {
			t.Fatalf("event %d is not in its stored form: %+v, stored %+v", i, g, w.Stored)
		}
	}
	if limited, err := eventstore.ReadRange(t.Context(), s.Pool(), eventstore.Start, all[29].Position, 5); err != nil || len(limited) != 5 || limited[4].ID != all[4].ID {
		t.Fatalf("limit 5: %d events, %v", len(limited), err)
	}
}

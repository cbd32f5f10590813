package eventstore_test

import (
	"encoding/json"
	"testing"

	"github.com/tradeops/tradeops/eventstore"
)

// upcastingStore seeds a store and returns it, a Store on the same pool
// with an upcaster for execution.prepare, and every event as that one reads
// it (Stored holds the stored form to compare with).
func upcastingStore(t *testing.T) (s, upcast *eventstore.Store, all []eventstore.Event) {
	t.Helper()
	s = newReplayStore(t)
	seedReplay(t, s)
	waitVisible(t, s, 30)
	upcast = eventstore.New(s.Pool(), eventstore.WithUpcaster("execution.prepare", func(v int, data json.RawMessage) (int, json.RawMessage, error) {
		if v >= 5 {
			return v, data, nil
		}
		return 5, json.RawMessage(`{"upcast":true}`), nil
	}))
	all = readAllEvents(t, upcast, eventstore.Filter{})
	return s, upcast, all
}

// storedForm returns a callback for EachInRange and EachAfter that checks
// it is handed all[from], all[from+1], ... in their stored form: the stored
// payload and schema version (no upcaster) and the stored metadata bytes.
func storedForm(t *testing.T, all []eventstore.Event, from int, seen *int) func(*eventstore.RawEvent) error {
	return func(g *eventstore.RawEvent) error {
		i := *seen
		w := all[from+i]
		if g.Position != w.Position || string(g.ID) != w.ID || string(g.StreamID) != w.StreamID || g.StreamVersion != w.StreamVersion ||
			string(g.Type) != w.Type || !g.RecordedAt.Equal(w.RecordedAt) {
			t.Fatalf("event %d: %+v, want %+v", i, g, w)
		}
		if int(g.SchemaVersion) != w.Stored.SchemaVersion || string(g.Data) != string(w.Stored.Data) ||
			string(g.Metadata) != string(w.Stored.Metadata) {
			t.Fatalf("event %d is not in its stored form: %+v, stored %+v", i, g, w.Stored)
		}
		*seen++
		return nil
	}
}

// EachInRange reads (after, upTo] in store order, as stored.
func TestEachInRangeReadsTheStoredForm(t *testing.T) {
	s, _, all := upcastingStore(t)
	i := 0
	n, err := eventstore.EachInRange(t.Context(), s.Pool(), all[3].Position, all[20].Position, 100, storedForm(t, all, 4, &i))
	if err != nil || n != 17 || i != 17 {
		t.Fatalf("(4th, 21st] holds %d events (%d seen, %v), want 17", n, i, err)
	}
	var last string
	if n, err := eventstore.EachInRange(t.Context(), s.Pool(), eventstore.Start, all[29].Position, 5, func(g *eventstore.RawEvent) error {
		last = string(g.ID)
		return nil
	}); err != nil || n != 5 || last != all[4].ID {
		t.Fatalf("limit 5: %d events, %v", n, err)
	}
}

// EachAfter reads up to limit events after a position in store order, as
// stored, to the end of what is readable.
func TestEachAfterReadsTheStoredForm(t *testing.T) {
	s, _, all := upcastingStore(t)
	i := 0
	n, err := eventstore.EachAfter(t.Context(), s.Pool(), all[3].Position, 17, storedForm(t, all, 4, &i))
	if err != nil || n != 17 || i != 17 {
		t.Fatalf("17 events after the 4th: %d (%d seen, %v)", n, i, err)
	}
	i = 0
	n, err = eventstore.EachAfter(t.Context(), s.Pool(), all[19].Position, 100, storedForm(t, all, 20, &i))
	if err != nil || n != len(all)-20 || i != n {
		t.Fatalf("after the 20th: %d events (%d seen, %v), want %d", n, i, err, len(all)-20)
	}
}

// ReadStoredIn reads like ReadIn (gap-free, in store order) but in the
// stored form: the stored payload and schema version (no upcaster), the
// stored metadata bytes, and Metadata left undecoded.
func TestReadStoredInReadsTheStoredForm(t *testing.T) {
	_, upcast, all := upcastingStore(t)
	got, err := upcast.ReadStoredIn(t.Context(), upcast.Pool(), all[3].Position, 17)
	if err != nil || len(got) != 17 {
		t.Fatalf("17 events after the 4th: %d, %v", len(got), err)
	}
	upcasts := 0
	for _, w := range all[4:21] {
		if string(w.Data) != string(w.Stored.Data) {
			upcasts++
		}
	}
	if upcasts == 0 {
		t.Fatal("no event in the range is upcast: the test proves nothing")
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
}

package eventstore

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// decodeOne runs one stored row through a batch.
func decodeOne(t *testing.T, md []byte) (Event, error) {
	t.Helper()
	var d decoder
	r := RawEvent{Position: Position{TransactionID: 7, Offset: 9}, ID: []byte("id-1"), StreamID: []byte("s-1"), StreamVersion: 3,
		Type: []byte("t.x"), SchemaVersion: 2, Data: []byte(`{"a":1}`), Metadata: md, RecordedAt: time.Unix(5, 0).UTC()}
	if err := d.add(&r); err != nil {
		return Event{}, err
	}
	e := d.events[0]
	if e.ID != "id-1" || e.StreamID != "s-1" || e.Type != "t.x" || string(e.Data) != `{"a":1}` || e.Position != r.Position ||
		e.StreamVersion != 3 || e.SchemaVersion != 2 || e.Stored.SchemaVersion != 2 || !e.RecordedAt.Equal(r.RecordedAt) {
		t.Fatalf("decoded %+v from %+v", e, r)
	}
	return e, nil
}

func TestBatchMetadata(t *testing.T) {
	for _, raw := range []string{
		`{}`, `{"actor_id":"a","stream_id":"s","client_ip":"1.2.3.4"}`,
		`{"actor_email" : "x\"y@example.com" , "correlation_id":"c\u00e9"}`,
		`{"actor_id":"first","actor_id":"second"}`, `{"actor_email":"é🙂@example.com"}`,
		`{"Actor_ID":"folded"}`, `{"causation_id":"c","n":1}`, `{"actor_id":""}`,
	} {
		e, err := decodeOne(t, []byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var want Metadata
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		if e.Metadata != want || string(e.Stored.Metadata) != raw {
			t.Fatalf("%s: metadata %+v (stored %s), want %+v", raw, e.Metadata, e.Stored.Metadata, want)
		}
	}
	if _, err := decodeOne(t, []byte(`{"actor_id":5}`)); err == nil {
		t.Fatal("a metadata value of the wrong type was accepted")
	}
	e, err := decodeOne(t, nil)
	if err != nil || e.Metadata != (Metadata{}) || e.Stored.Metadata != nil {
		t.Fatalf("NULL metadata: %+v, %v", e, err)
	}
}

// FuzzBatchMetadata: the batch decoder agrees with encoding/json on every
// metadata object the database can hand out.
func FuzzBatchMetadata(f *testing.F) {
	for _, s := range []string{`{}`, `{"actor_id":"a","x":"y"}`, `{"actor_email":"\\\"","client_ip":"\u0001"}`, ` {"causation_id" :"c"} `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !utf8.ValidString(raw) || !json.Valid([]byte(raw)) {
			return
		}
		var want Metadata
		wantErr := json.Unmarshal([]byte(raw), &want)
		got, err := decodeOne(t, []byte(raw))
		if (err != nil) != (wantErr != nil) || (err == nil && got.Metadata != want) {
			t.Fatalf("%s: batch %+v, %v; encoding/json %+v, %v", raw, got.Metadata, err, want, wantErr)
		}
	})
}

// TestDecodedSlicesAreCapped: an event's payload and metadata share a
// buffer, so appending to the payload must not overwrite the metadata.
func TestDecodedSlicesAreCapped(t *testing.T) {
	var d decoder
	r := RawEvent{ID: []byte("i"), StreamID: []byte("s"), Type: []byte("t"), Data: []byte(`{"a":1}`), Metadata: []byte(`{"actor_id":"x"}`)}
	if err := d.add(&r); err != nil {
		t.Fatal(err)
	}
	e := d.events[0]
	_ = append(e.Data, "xxxxxxxx"...)
	if string(e.Stored.Metadata) != `{"actor_id":"x"}` || e.Metadata.ActorID != "x" {
		t.Fatalf("appending to the payload changed the metadata: %s", e.Stored.Metadata)
	}
	r.Data = nil
	if err := d.add(&r); err != nil || d.events[1].Data != nil || d.events[1].Stored.Data != nil {
		t.Fatalf("NULL payload: %+v, %v", d.events[1], err)
	}
}

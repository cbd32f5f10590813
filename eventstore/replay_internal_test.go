package eventstore

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/tradeops/tradeops/internal/testdb"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "nl\ncr\rtab\t", "\x00\x01\x1f\x7f", "é 🙂 <html> & ' \u2028"} {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil || got != s {
			t.Fatalf("appendString(%q) = %s: %q, %v", s, appendString(nil, s), got, err)
		}
		if string(appendString(nil, []byte(s))) != string(appendString(nil, s)) {
			t.Fatalf("string and []byte forms differ for %q", s)
		}
	}
}

func metadataFromRaw(t *testing.T, raw string) (Metadata, bool) {
	t.Helper()
	out, ok := appendRawMetadata(nil, []byte(raw))
	if !ok {
		return Metadata{}, false
	}
	var m Metadata
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("appendRawMetadata(%s) = %s: invalid JSON: %v", raw, out, err)
	}
	return m, true
}

func TestAppendRawMetadata(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		ok   bool
		want Metadata
	}{
		{`{}`, true, Metadata{}},
		{` { } `, true, Metadata{}},
		{`{"actor_id":"a","stream_id":"s","client_ip":"1.2.3.4"}`, true, Metadata{ActorID: "a", ClientIP: "1.2.3.4"}},
		{`{"actor_email" : "x\"y@example.com" , "correlation_id":"c\u00e9"}`, true, Metadata{ActorEmail: `x"y@example.com`, CorrelationID: "cé"}},
		{`{"actor_id":"first","actor_id":"second"}`, true, Metadata{ActorID: "second"}},
		{`{"actor_id":""}`, true, Metadata{}},
		{`{"actor\u005fid":"escaped key"}`, false, Metadata{}},
		{`{"Actor_ID":"case-insensitive, like encoding/json"}`, false, Metadata{}},
		{`{"cauſation_id":"long s folds to s in encoding/json"}`, false, Metadata{}},
		{`{"n":1}`, false, Metadata{}},
		{`{"actor_id":null}`, false, Metadata{}},
		{`[]`, false, Metadata{}},
		{``, false, Metadata{}},
		{`{"actor_id":"a"} x`, false, Metadata{}},
		{`{"actor_id":"a",}`, false, Metadata{}},
		{`{"actor_id":"a"`, false, Metadata{}},
	} {
		got, ok := metadataFromRaw(t, tc.raw)
		if ok != tc.ok || got != tc.want {
			t.Fatalf("appendRawMetadata(%s) = %+v, %v; want %+v, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzAppendRawMetadata: whenever the fast copier accepts a valid JSON
// object, it agrees with encoding/json.
func FuzzAppendRawMetadata(f *testing.F) {
	for _, s := range []string{`{}`, `{"actor_id":"a","x":"y"}`, `{"actor_email":"\\\"","client_ip":"\u0001"}`, ` {"causation_id" :"c"} `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !utf8.ValidString(raw) || !json.Valid([]byte(raw)) {
			return // the database only hands out valid JSON in UTF-8
		}
		got, ok := metadataFromRaw(t, raw)
		if !ok {
			return
		}
		var want Metadata
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatalf("fast path accepted %s, encoding/json: %v", raw, err)
		}
		if got != want {
			t.Fatalf("%s: fast %+v, encoding/json %+v", raw, got, want)
		}
	})
}

// TestReadsUseBinaryLayout guards the fast path: with pgx's default query
// mode the read query's result formats are the ones RawEvent.decode reads.
func TestReadsUseBinaryLayout(t *testing.T) {
	pool, _ := testdb.New(t)
	sql, args := readSQL(eventColumns, Start, 1, Filter{})
	rows, err := pool.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !binaryLayout(rows.FieldDescriptions()) {
		t.Fatalf("replay would take the slow path: %+v", rows.FieldDescriptions())
	}
}

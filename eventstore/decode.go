package eventstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// eventColumns are the columns every read selects, in RawEvent's order, read
// raw: transaction_id as xid8 (no text cast), the JSON columns as stored.
const eventColumns = `"offset", transaction_id, uuid, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at`

// RawEvent is one event exactly as stored — the schema version, payload and
// metadata before any upcasting or parsing — as the bytes of its row: they
// borrow the connection's read buffer and are valid only until the next row.
// Data and Metadata are nil when the column is NULL.
type RawEvent struct {
	Position
	ID            []byte
	StreamID      []byte
	StreamVersion int64
	Type          []byte
	SchemaVersion int32
	Data          []byte
	Metadata      []byte
	RecordedAt    time.Time
}

// binaryLayout reports whether the result columns come in the formats
// RawEvent.decode reads: binary integers and timestamp (what pgx asks for in
// its default extended protocol modes). Text-like columns are the same bytes
// in either format.
func binaryLayout(fds []pgconn.FieldDescription) bool {
	if len(fds) != 10 {
		return false
	}
	for _, i := range []int{0, 1, 4, 6, 9} {
		if fds[i].Format != pgtype.BinaryFormatCode {
			return false
		}
	}
	want := []uint32{pgtype.Int8OID, pgtype.XID8OID, 0, 0, pgtype.Int8OID, 0, pgtype.Int4OID, 0, 0, pgtype.TimestamptzOID}
	for i, oid := range want {
		if oid != 0 && fds[i].DataTypeOID != oid {
			return false
		}
	}
	return true
}

// pgEpochMicros is 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in
// Unix microseconds.
const pgEpochMicros = 946_684_800_000_000

func (r *RawEvent) decode(v [][]byte) error {
	for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 9} {
		if v[i] == nil {
			return fmt.Errorf("column %d is NULL", i)
		}
	}
	if len(v[0]) != 8 || len(v[1]) != 8 || len(v[4]) != 8 || len(v[6]) != 4 || len(v[9]) != 8 {
		return errors.New("unexpected binary column width")
	}
	r.Offset = int64(binary.BigEndian.Uint64(v[0]))
	r.TransactionID = binary.BigEndian.Uint64(v[1])
	r.ID, r.StreamID, r.Type = v[2], v[3], v[5]
	r.StreamVersion = int64(binary.BigEndian.Uint64(v[4]))
	r.SchemaVersion = int32(binary.BigEndian.Uint32(v[6]))
	r.Data, r.Metadata = v[7], v[8]
	us := int64(binary.BigEndian.Uint64(v[9]))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return errors.New("recorded_at is infinite")
	}
	r.RecordedAt = time.UnixMicro(us + pgEpochMicros).UTC()
	return nil
}

// scan is the slow path for result formats decode does not know.
func (r *RawEvent) scan(rows pgx.Rows) error {
	var id, stream, typ string
	var data, md []byte
	var sv int32
	if err := rows.Scan(&r.Offset, &r.TransactionID, &id, &stream, &r.StreamVersion, &typ, &sv, &data, &md, &r.RecordedAt); err != nil {
		return err
	}
	r.ID, r.StreamID, r.Type, r.SchemaVersion, r.Data, r.Metadata = []byte(id), []byte(stream), []byte(typ), sv, data, md
	r.RecordedAt = r.RecordedAt.UTC()
	return nil
}

// eachRow calls f with every row of rows, decoded from the raw values when
// their layout allows (no allocation per row), scanned otherwise.
func eachRow(rows pgx.Rows, f func(*RawEvent) error) error {
	defer rows.Close()
	fast := binaryLayout(rows.FieldDescriptions())
	var r RawEvent
	for rows.Next() {
		var err error
		if fast {
			err = r.decode(rows.RawValues())
		} else {
			err = r.scan(rows)
		}
		if err != nil {
			return fmt.Errorf("event after %s: %w", r.Position, err)
		}
		if err := f(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// decoder turns rows into Events without an allocation per event: the
// bytes of every event — its text fields (id, stream, type and the metadata
// values) and its stored payload and metadata — are carved out of shared
// chunks (arena). Batch-sized buffers were slower than an allocation per
// event (page faults, and returning memory to the OS on every batch);
// chunks of arenaChunk bytes stay small objects, which the Go heap recycles
// best, and a batch of 10,000 events takes a few hundred of them instead of
// 20,000 objects for the garbage collector.
//
// Metadata is not decoded with encoding/json, which cost more than the rest
// of a read together (validating and unquoting ~400 bytes per event): the
// scanner Replay uses locates the string tokens of the Metadata keys, and
// anything it does not vouch for goes to encoding/json after all.
type decoder struct {
	events []Event
	limit  int    // the most events the read can return
	stored bool   // leave Metadata zero: the caller reads the stored form only
	text   []byte // scratch for one event's text fields
	arena  arena
}

// firstCap is the capacity of a read's first allocation of Events: enough
// for a live poll, small enough not to waste memory on one.
const firstCap = 256

// grow makes room for one more event. A read that outgrows firstCap is a
// batch read (a catch-up, a rebuild): the second allocation takes the rest
// of the limit at once, instead of doubling through ever larger slices
// (each one a fresh large object, paid again in page faults and returned
// to the OS by the scavenger).
func (d *decoder) grow() {
	if len(d.events) < cap(d.events) {
		return
	}
	n := max(firstCap, min(d.limit, 1<<16), 2*cap(d.events))
	if cap(d.events) == 0 {
		n = max(1, min(d.limit, firstCap))
	}
	d.events = append(make([]Event, 0, n), d.events...)
}

// add appends r as an Event, built in place.
func (d *decoder) add(r *RawEvent) error {
	d.grow()
	d.events = d.events[:len(d.events)+1]
	e := &d.events[len(d.events)-1]
	e.Position, e.StreamVersion, e.SchemaVersion, e.RecordedAt = r.Position, r.StreamVersion, int(r.SchemaVersion), r.RecordedAt
	var meta [len(metadataKeys)][2]int // value bounds in text
	text := append(append(append(d.text[:0], r.ID...), r.StreamID...), r.Type...)
	ok := r.Metadata != nil && !d.stored
	if ok {
		var toks [len(metadataKeys)][]byte
		toks, ok = metadataTokens(r.Metadata)
		for i := 0; ok && i < len(toks); i++ {
			var v []byte
			if v, ok = plainJSONString(toks[i]); ok {
				meta[i] = [2]int{len(text), len(text) + len(v)}
				text = append(text, v...)
			}
		}
		if !ok {
			if err := json.Unmarshal(r.Metadata, &e.Metadata); err != nil {
				d.events = d.events[:len(d.events)-1]
				return fmt.Errorf("event %s metadata: %w", r.ID, err)
			}
		}
	}
	d.text = text
	str := d.arena.string(text)
	n1, n2 := len(r.ID), len(r.ID)+len(r.StreamID)
	e.ID, e.StreamID, e.Type = str[:n1], str[n1:n2], str[n2:n2+len(r.Type)]
	if ok {
		v := func(i int) string { return str[meta[i][0]:meta[i][1]] }
		e.Metadata = Metadata{ActorID: v(0), ActorEmail: v(1), CorrelationID: v(2), CausationID: v(3), ClientIP: v(4)}
	}
	e.Data, e.Stored.Metadata = d.arena.bytes(r.Data), d.arena.bytes(r.Metadata)
	e.Stored.SchemaVersion, e.Stored.Data = e.SchemaVersion, e.Data
	return nil
}

// arena copies decoded bytes into shared chunks. A value it hands out as
// bytes has its capacity capped, so appending to it never overwrites a
// neighbour; a value it hands out as a string is never handed out as bytes,
// so nothing can change it. A chunk lives as long as any value in it: an
// Event kept long after its batch keeps up to arenaChunk bytes alive.
type arena struct{ chunk []byte }

// arenaChunk is the size of an arena's chunks, the largest small object
// of the Go heap; a value over a quarter of it gets its own allocation.
const arenaChunk = 32 << 10

// take returns n bytes of the arena's memory, length 0, capacity n.
func (a *arena) take(n int) []byte {
	if n > arenaChunk/4 {
		return make([]byte, 0, n)
	}
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	i := len(a.chunk)
	a.chunk = a.chunk[:i+n]
	return a.chunk[i : i : i+n]
}

// bytes returns a copy of v (nil for nil: a NULL column).
func (a *arena) bytes(v []byte) []byte {
	switch {
	case v == nil:
		return nil
	case len(v) == 0:
		return []byte{}
	}
	return append(a.take(len(v)), v...)
}

// string returns a copy of v as a string.
func (a *arena) string(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	b := append(a.take(len(v)), v...)
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is never handed out as bytes (see arena)
}

// plainJSONString returns the value of a JSON string token (nil: absent,
// an empty value) when it needs no unescaping; it reports false otherwise,
// and for anything encoding/json would treat differently (control
// characters, invalid UTF-8).
func plainJSONString(tok []byte) ([]byte, bool) {
	if len(tok) < 2 {
		return nil, true
	}
	v := tok[1 : len(tok)-1]
	ascii := true
	for _, c := range v {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	return v, ascii || utf8.Valid(v)
}

// collectEvents reads every row of rows into Events; limit is the most rows
// the query can return. With stored, Metadata is left zero (Stored.Metadata
// has the bytes).
func collectEvents(rows pgx.Rows, limit int, stored bool) ([]Event, error) {
	d := decoder{limit: limit, stored: stored}
	if err := eachRow(rows, d.add); err != nil {
		return nil, err
	}
	return d.events, nil
}

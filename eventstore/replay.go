package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// ReplayOptions select what Replay writes.
type ReplayOptions struct {
	// After is the exclusive starting position; Start replays everything.
	After Position
	// Filter narrows the replay like Read's filter.
	Filter Filter
	// Limit stops after this many events; 0 means no limit.
	Limit int64
	// Follow keeps tailing new events (through Subscribe) once the replay
	// has caught up, until ctx ends or Limit is reached.
	Follow bool
	// BatchSize is how many events one query reads (default 5000).
	BatchSize int
}

// errReplayLimit stops the follow subscription once Limit events are out.
var errReplayLimit = errors.New("replay limit reached")

// Replay writes every event after opts.After that matches opts.Filter, in
// store order, to w as JSON Lines, one object per event:
//
//	{"position":"XID:OFFSET","transaction_id":XID,"offset":OFFSET,"id":"...",
//	 "stream":"...","version":N,"type":"...","schema_version":N,
//	 "recorded_at":"RFC 3339, UTC","metadata":{...},"data":{...}}
//
// metadata holds the event's Metadata (actor_id, actor_email,
// correlation_id, causation_id, client_ip; empty ones left out), data the
// payload as Read returns it: the stored JSON bytes (compacted only if they
// contain a line break), upcast to the current schema version where an
// upcaster is registered. Reading is gap-free like Read, in keyset batches of
// opts.BatchSize; the output is flushed after each batch.
//
// It returns how many events it wrote and the position of the last one (the
// checkpoint to resume from with After; opts.After when none was written).
// Without Follow it returns once it has caught up (or wrote Limit events).
// With Follow it keeps tailing and returns when Limit is reached (nil error)
// or ctx ends (ctx.Err()); what it wrote up to then is flushed either way.
func (s *Store) Replay(ctx context.Context, w io.Writer, opts ReplayOptions) (n int64, last Position, err error) {
	if opts.Limit < 0 {
		return 0, opts.After, errors.New("replay: negative limit")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := &lineEncoder{s: s}
	last = opts.After
	flush := func(err error) (int64, Position, error) {
		if ferr := bw.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("replay: write: %w", ferr)
		}
		return n, last, err
	}
	for {
		limit := opts.BatchSize
		if opts.Limit > 0 && opts.Limit-n < int64(limit) {
			limit = int(opts.Limit - n)
		}
		if limit == 0 {
			return flush(nil)
		}
		got, err := s.replayBatch(ctx, bw, enc, limit, opts.Filter, &last)
		n += got
		if err != nil {
			return flush(err)
		}
		if err := bw.Flush(); err != nil {
			return n, last, fmt.Errorf("replay: write: %w", err)
		}
		if got < int64(limit) {
			break // caught up
		}
	}
	if !opts.Follow {
		return n, last, nil
	}
	err = s.Subscribe(ctx, last, SubscribeOptions{BatchSize: opts.BatchSize, Filter: opts.Filter}, func(_ context.Context, events []Event) error {
		for i := range events {
			line, err := enc.event(&events[i])
			if err != nil {
				return err
			}
			_, _ = bw.Write(line) // a write error sticks; Flush reports it
			n++
			last = events[i].Position
			if opts.Limit > 0 && n >= opts.Limit {
				return errReplayLimit
			}
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("replay: write: %w", err)
		}
		return nil
	})
	if errors.Is(err, errReplayLimit) {
		err = nil
	}
	return flush(err)
}

// replayColumns are read raw: transaction_id as xid8 (no text cast), the
// JSON columns without conversion.
const replayColumns = `"offset", transaction_id, uuid, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at`

// replayBatch writes up to limit events after *last and advances *last to
// each event written.
func (s *Store) replayBatch(ctx context.Context, bw *bufio.Writer, enc *lineEncoder, limit int, f Filter, last *Position) (int64, error) {
	sql, args := readSQL(replayColumns, *last, limit, f)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	defer rows.Close()
	fast := binaryLayout(rows.FieldDescriptions())
	var r rawRow
	var got int64
	for rows.Next() {
		if fast {
			err = r.decode(rows.RawValues())
		} else {
			err = r.scan(rows)
		}
		if err != nil {
			return got, fmt.Errorf("replay: event after %s: %w", *last, err)
		}
		line, err := enc.row(&r)
		if err != nil {
			return got, err
		}
		_, _ = bw.Write(line) // a write error sticks; the caller's Flush reports it
		got++
		*last = r.pos
	}
	if err := rows.Err(); err != nil {
		return got, fmt.Errorf("replay: %w", err)
	}
	return got, nil
}

// rawRow is one event as bytes borrowed from the connection's read buffer,
// valid until the next row.
type rawRow struct {
	pos           Position
	id            []byte
	stream        []byte
	version       int64
	typ           []byte
	schemaVersion int32
	data          []byte
	md            []byte
	recordedAt    time.Time
}

// binaryLayout reports whether the result columns come in the formats
// rawRow.decode reads: binary integers and timestamp (what pgx asks for in
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

func (r *rawRow) decode(v [][]byte) error {
	for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 9} {
		if v[i] == nil {
			return fmt.Errorf("column %d is NULL", i)
		}
	}
	if len(v[0]) != 8 || len(v[1]) != 8 || len(v[4]) != 8 || len(v[6]) != 4 || len(v[9]) != 8 {
		return errors.New("unexpected binary column width")
	}
	r.pos.Offset = int64(binary.BigEndian.Uint64(v[0]))
	r.pos.TransactionID = binary.BigEndian.Uint64(v[1])
	r.id, r.stream, r.typ = v[2], v[3], v[5]
	r.version = int64(binary.BigEndian.Uint64(v[4]))
	r.schemaVersion = int32(binary.BigEndian.Uint32(v[6]))
	r.data, r.md = v[7], v[8]
	us := int64(binary.BigEndian.Uint64(v[9]))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return errors.New("recorded_at is infinite")
	}
	r.recordedAt = time.UnixMicro(us + pgEpochMicros).UTC()
	return nil
}

// scan is the slow path for result formats decode does not know.
func (r *rawRow) scan(rows pgx.Rows) error {
	var id, stream, typ string
	var data, md []byte
	var sv int32
	if err := rows.Scan(&r.pos.Offset, &r.pos.TransactionID, &id, &stream, &r.version, &typ, &sv, &data, &md, &r.recordedAt); err != nil {
		return err
	}
	r.id, r.stream, r.typ, r.schemaVersion, r.data, r.md = []byte(id), []byte(stream), []byte(typ), sv, data, md
	r.recordedAt = r.recordedAt.UTC()
	return nil
}

// lineEncoder renders events as JSON lines into a reused buffer.
type lineEncoder struct {
	s   *Store
	buf []byte
	tmp bytes.Buffer
}

// row encodes a stored row; the returned line is valid until the next call.
func (l *lineEncoder) row(r *rawRow) ([]byte, error) {
	data, sv := r.data, int(r.schemaVersion)
	if up := l.s.upcasters[string(r.typ)]; up != nil {
		e := Event{ID: string(r.id), Type: string(r.typ), SchemaVersion: sv, Data: bytes.Clone(r.data)}
		if err := l.s.upcast(&e); err != nil {
			return nil, err
		}
		data, sv = e.Data, e.SchemaVersion
	}
	b := appendHead(l.buf[:0], r.pos, r.id, r.stream, r.version, r.typ, sv, r.recordedAt)
	b = append(b, `,"metadata":`...)
	if md, ok := appendRawMetadata(b, r.md); ok {
		b = md
	} else {
		var m Metadata
		if len(r.md) > 0 {
			if err := json.Unmarshal(r.md, &m); err != nil {
				return nil, fmt.Errorf("event %s metadata: %w", r.id, err)
			}
		}
		b = appendMetadata(b, &m)
	}
	return l.tail(b, data)
}

// event encodes an Event (the Follow path, from Subscribe).
func (l *lineEncoder) event(e *Event) ([]byte, error) {
	b := appendHead(l.buf[:0], e.Position, e.ID, e.StreamID, e.StreamVersion, e.Type, e.SchemaVersion, e.RecordedAt)
	b = append(b, `,"metadata":`...)
	b = appendMetadata(b, &e.Metadata)
	return l.tail(b, e.Data)
}

func appendHead[T textual](b []byte, p Position, id, stream T, version int64, typ T, sv int, at time.Time) []byte {
	b = append(b, `{"position":"`...)
	b = strconv.AppendUint(b, p.TransactionID, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, p.Offset, 10)
	b = append(b, `","transaction_id":`...)
	b = strconv.AppendUint(b, p.TransactionID, 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, p.Offset, 10)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"stream":`...)
	b = appendString(b, stream)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"schema_version":`...)
	b = strconv.AppendInt(b, int64(sv), 10)
	b = append(b, `,"recorded_at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func (l *lineEncoder) tail(b, data []byte) ([]byte, error) {
	b = append(b, `,"data":`...)
	switch {
	case len(data) == 0:
		b = append(b, "null"...)
	case bytes.IndexByte(data, '\n') >= 0 || bytes.IndexByte(data, '\r') >= 0:
		l.tmp.Reset()
		if err := json.Compact(&l.tmp, data); err != nil {
			return nil, fmt.Errorf("replay: event data: %w", err)
		}
		b = append(b, l.tmp.Bytes()...)
	default:
		b = append(b, data...)
	}
	b = append(b, '}', '\n')
	l.buf = b
	return b, nil
}

// metadataKeys are Metadata's JSON names, in field order.
var metadataKeys = [...]string{"actor_id", "actor_email", "correlation_id", "causation_id", "client_ip"}

func appendMetadata(b []byte, m *Metadata) []byte {
	vals := [...]string{m.ActorID, m.ActorEmail, m.CorrelationID, m.CausationID, m.ClientIP}
	b = append(b, '{')
	first := true
	for i, v := range vals {
		if v == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, metadataKeys[i]...)
		b = append(b, `":`...)
		b = appendString(b, v)
	}
	return append(b, '}')
}

// appendRawMetadata copies the Metadata keys out of the stored metadata
// object (a flat object of strings, as watermill writes it) without decoding
// it: each value is a JSON string token already, copied as is. It reports
// false for anything unexpected, and the caller decodes properly.
func appendRawMetadata(b, raw []byte) ([]byte, bool) {
	var vals [len(metadataKeys)][]byte
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return b, false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := stringToken(raw, i)
			if !ok || bytes.IndexByte(key, '\\') >= 0 || !ascii(key) {
				return b, false // escaped or non-ASCII keys (Unicode case folding): decode properly
			}
			j = skipSpace(raw, j)
			if j >= len(raw) || raw[j] != ':' {
				return b, false
			}
			j = skipSpace(raw, j+1)
			val, k, ok := stringToken(raw, j)
			if !ok {
				return b, false // not a string: decode properly
			}
			name := key[1 : len(key)-1]
			for n, mk := range metadataKeys {
				if string(name) == mk {
					vals[n] = val
				} else if len(name) == len(mk) && strings.EqualFold(string(name), mk) {
					return b, false // encoding/json matches keys case-insensitively
				}
			}
			k = skipSpace(raw, k)
			if k >= len(raw) {
				return b, false
			}
			if raw[k] == '}' {
				i = k + 1
				break
			}
			if raw[k] != ',' {
				return b, false
			}
			i = skipSpace(raw, k+1)
		}
	}
	if skipSpace(raw, i) != len(raw) {
		return b, false
	}
	b = append(b, '{')
	first := true
	for n, v := range vals {
		if len(v) <= 2 { // absent or ""
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, metadataKeys[n]...)
		b = append(b, `":`...)
		b = append(b, v...)
	}
	return append(b, '}'), true
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringToken returns the JSON string token starting at b[i], quotes
// included, and the index after it.
func stringToken(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	// Fast path: the closing quote with no escape before it.
	if q := bytes.IndexByte(b[i+1:], '"'); q >= 0 && bytes.IndexByte(b[i+1:i+1+q], '\\') < 0 {
		return b[i : i+q+2], i + q + 2, true
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return b[i : j+1], j + 1, true
		}
	}
	return nil, i, false
}

type textual interface{ ~string | ~[]byte }

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. The database hands out valid
// UTF-8, which JSON carries as is; only quotes, backslashes and control
// characters are escaped.
func appendString[T textual](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

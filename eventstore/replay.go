package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
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

// replayBatch writes up to limit events after *last and advances *last to
// each event written.
func (s *Store) replayBatch(ctx context.Context, bw *bufio.Writer, enc *lineEncoder, limit int, f Filter, last *Position) (int64, error) {
	sql, args := readSQL(eventColumns, *last, limit, f)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	var got int64
	err = eachRow(rows, func(r *RawEvent) error {
		line, err := enc.row(r)
		if err != nil {
			return err
		}
		_, _ = bw.Write(line) // a write error sticks; the caller's Flush reports it
		got++
		*last = r.Position
		return nil
	})
	if err != nil {
		return got, fmt.Errorf("replay: %w", err)
	}
	return got, nil
}

// LineEncoder renders Events as the JSON lines Replay writes (the format is
// described there), newline included, for other consumers of the stream
// (the broker export), so the stream has one wire format. The line returned
// by Encode is valid until its next call.
type LineEncoder struct{ enc lineEncoder }

// Encode renders e. e.Data may be rewritten first (redacted), as long as
// it is still one JSON value.
func (l *LineEncoder) Encode(e *Event) ([]byte, error) { return l.enc.event(e) }

// lineEncoder renders events as JSON lines into a reused buffer.
type lineEncoder struct {
	s   *Store
	buf []byte
	tmp bytes.Buffer
}

// row encodes a stored row; the returned line is valid until the next call.
func (l *lineEncoder) row(r *RawEvent) ([]byte, error) {
	data, sv := r.Data, int(r.SchemaVersion)
	if up := l.s.upcasters[string(r.Type)]; up != nil {
		e := Event{ID: string(r.ID), Type: string(r.Type), SchemaVersion: sv, Data: bytes.Clone(r.Data)}
		if err := l.s.upcast(&e); err != nil {
			return nil, err
		}
		data, sv = e.Data, e.SchemaVersion
	}
	b := appendHead(l.buf[:0], r.Position, r.ID, r.StreamID, r.StreamVersion, r.Type, sv, r.RecordedAt)
	b = append(b, `,"metadata":`...)
	if md, ok := appendRawMetadata(b, r.Metadata); ok {
		b = md
	} else {
		var m Metadata
		if len(r.Metadata) > 0 {
			if err := json.Unmarshal(r.Metadata, &m); err != nil {
				return nil, fmt.Errorf("event %s metadata: %w", r.ID, err)
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

// metadataKeyOfLen maps a length to the index of the Metadata key of that
// length, or -1: the keys' lengths differ, so a key of the stored metadata
// is compared with one of them at most.
var metadataKeyOfLen = func() (m [16]int8) {
	for i := range m {
		m[i] = -1
	}
	for n, k := range metadataKeys {
		if m[len(k)] >= 0 {
			panic("two Metadata keys of length " + strconv.Itoa(len(k)))
		}
		m[len(k)] = int8(n)
	}
	return m
}()

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
	vals, ok := metadataTokens(raw)
	if !ok {
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

// metadataTokens finds the values of the Metadata keys in the stored
// metadata object without decoding it: each is the JSON string token,
// quotes included, or nil when the key is absent (the last one wins, as in
// encoding/json). It reports false for anything it does not vouch for —
// escaped or non-ASCII keys, keys that match a Metadata key only when case
// is folded, values that are not strings, malformed objects — and the caller
// decodes with encoding/json instead.
func metadataTokens(raw []byte) (vals [len(metadataKeys)][]byte, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return vals, false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := stringToken(raw, i)
			if !ok || bytes.IndexByte(key, '\\') >= 0 || !ascii(key) {
				return vals, false // escaped or non-ASCII keys (Unicode case folding): decode properly
			}
			j = skipSpace(raw, j)
			if j >= len(raw) || raw[j] != ':' {
				return vals, false
			}
			j = skipSpace(raw, j+1)
			val, k, ok := stringToken(raw, j)
			if !ok {
				return vals, false // not a string: decode properly
			}
			name := key[1 : len(key)-1]
			if len(name) < len(metadataKeyOfLen) {
				if n := metadataKeyOfLen[len(name)]; n >= 0 {
					if mk := metadataKeys[n]; string(name) == mk {
						vals[n] = val
					} else if strings.EqualFold(string(name), mk) {
						return vals, false // encoding/json matches keys case-insensitively
					}
				}
			}
			k = skipSpace(raw, k)
			if k >= len(raw) {
				return vals, false
			}
			if raw[k] == '}' {
				i = k + 1
				break
			}
			if raw[k] != ',' {
				return vals, false
			}
			i = skipSpace(raw, k+1)
		}
	}
	return vals, skipSpace(raw, i) == len(raw)
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

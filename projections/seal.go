package projections

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tradeops/tradeops/eventstore"
)

// AuditSeal is the tamper-evidence projection: it chains every event, in
// store order, into a SHA-256 hash chain,
//
//	hash(n) = SHA-256(hash(n-1) || canonical bytes of event n), hash(0) = 32 zero bytes,
//
// and stores (position, event id, seq, hash) per event. The canonical bytes
// cover the event exactly as stored — payload and metadata bytes before any
// upcasting — so any later change to a sealed row, or a row deleted, inserted
// or moved, breaks the chain at that event (see Verify).
//
// A rebuild would re-seal whatever the stream holds now, laundering a
// tampered event; `projections rebuild --all` therefore skips it (see
// Sealed), and re-sealing needs --reseal and a chain that still verifies.
type AuditSeal struct{}

func (AuditSeal) Name() string     { return SealName }
func (AuditSeal) Version() int     { return 1 }
func (AuditSeal) Tables() []string { return []string{sealTable} }

// The seal hashes the stored form only: its reads skip decoding the rest.
func (AuditSeal) storedFormOnly() {}

// SealName is the seal projection's name.
const SealName = "audit_seal"

const sealTable = "audit_seal"

// sealFormat starts every canonical encoding, so a future encoding can never
// produce the same bytes for a different meaning.
const sealFormat = "tradeops-seal/1"

var sealColumns = []string{"transaction_id", "offset", "event_id", "seq", "hash"}

// Apply seals the batch, continuing the chain from the table's last link.
// It hashes each event's stored form (Event.Stored), not its upcast payload.
// The links go to COPY as they are computed, so hashing overlaps the
// server's work on the rows already sent.
func (AuditSeal) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.Event) error {
	tip, err := readSealTip(ctx, tx, t)
	if err != nil {
		return err
	}
	c := newChain(tip)
	row := make([]any, len(sealColumns))
	i := 0
	_, err = tx.CopyFrom(ctx, t.Of(sealTable), sealColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(events) {
			return nil, nil
		}
		e := &events[i]
		i++
		h := c.add(e)
		row[0], row[1], row[2], row[3], row[4] = e.TransactionID, e.Offset, e.ID, c.count, h[:]
		return row, nil
	}))
	return err
}

// Hash is a link of the chain.
type Hash [sha256.Size]byte

// chain computes links; it reuses its buffer, so sealing costs no
// allocation per event.
type chain struct {
	prev  Hash
	count int64
	buf   []byte // prev || the canonical bytes of the event being linked
}

func newChain(tip sealRow) *chain {
	return &chain{prev: tip.Hash, count: tip.Seq}
}

// add links e to the chain and returns its hash.
func (c *chain) add(e *eventstore.Event) Hash {
	return c.link(canonical(c.start(), e.ID, e.StreamID, e.StreamVersion, e.Type, int32(e.Stored.SchemaVersion),
		e.RecordedAt, e.Stored.Metadata, e.Stored.Data, e.Position))
}

// addRaw links the stored row e to the chain and returns its hash: the same
// link add gives for the Event read from that row.
func (c *chain) addRaw(e *eventstore.RawEvent) Hash {
	return c.link(canonical(c.start(), e.ID, e.StreamID, e.StreamVersion, e.Type, e.SchemaVersion,
		e.RecordedAt, e.Metadata, e.Data, e.Position))
}

func (c *chain) start() []byte { return append(c.buf[:0], c.prev[:]...) }

func (c *chain) link(b []byte) Hash {
	c.buf, c.prev = b, sha256.Sum256(b)
	c.count++
	return c.prev
}

// canonical appends the deterministic encoding of an event as stored: the
// format tag, then every field in a fixed order, strings and bytes
// length-prefixed, numbers fixed-width big-endian, so two different events
// never encode alike. It covers the stored schema version, metadata and
// payload (before any upcasting), never an upcast payload. The text fields
// come as strings (an Event) or as the row's bytes (a RawEvent), which
// encode alike.
func canonical[T ~string | ~[]byte](b []byte, id, stream T, version int64, typ T, schemaVersion int32,
	recordedAt time.Time, md, data []byte, pos eventstore.Position) []byte {
	b = appendBytes(b, sealFormat)
	b = appendBytes(b, id)
	b = appendBytes(b, stream)
	b = binary.BigEndian.AppendUint64(b, uint64(version))
	b = appendBytes(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(schemaVersion))
	// The time, length-prefixed, formatted in place.
	at := len(b)
	b = recordedAt.UTC().AppendFormat(binary.BigEndian.AppendUint32(b, 0), time.RFC3339Nano)
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	b = appendNullable(b, md)
	b = appendNullable(b, data)
	b = binary.BigEndian.AppendUint64(b, pos.TransactionID)
	return binary.BigEndian.AppendUint64(b, uint64(pos.Offset))
}

// nullLength marks a NULL column, distinct from an empty one.
const nullLength = ^uint32(0)

// appendNullable appends v length-prefixed, or the NULL marker for nil.
func appendNullable(b, v []byte) []byte {
	if v == nil {
		return binary.BigEndian.AppendUint32(b, nullLength)
	}
	return appendBytes(b, v)
}

func appendBytes[T ~string | ~[]byte](b []byte, v T) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// sealRow is one stored link.
type sealRow struct {
	eventstore.Position
	EventID string
	Seq     int64
	Hash    Hash
}

func scanSealRow(row pgx.CollectableRow) (sealRow, error) {
	var s sealRow
	var h []byte
	if err := row.Scan(&s.TransactionID, &s.Offset, &s.EventID, &s.Seq, &h); err != nil {
		return s, err
	}
	if len(h) != len(s.Hash) {
		return s, fmt.Errorf("seal at %s: hash of %d bytes", s.Position, len(h))
	}
	copy(s.Hash[:], h)
	return s, nil
}

// readSealTip returns the last link of the chain in t (the zero link, seq 0,
// when the chain is empty).
func readSealTip(ctx context.Context, q eventstore.Querier, t Tables) (sealRow, error) {
	rows, err := q.Query(ctx, `SELECT transaction_id, "offset", event_id, seq, hash FROM `+t.Of(sealTable).Sanitize()+`
		ORDER BY transaction_id DESC, "offset" DESC LIMIT 1`)
	if err != nil {
		return sealRow{}, fmt.Errorf("read seal tip: %w", err)
	}
	tip, err := pgx.CollectExactlyOneRow(rows, scanSealRow)
	if errors.Is(err, pgx.ErrNoRows) {
		return sealRow{}, nil
	}
	if err != nil {
		return sealRow{}, fmt.Errorf("read seal tip: %w", err)
	}
	return tip, nil
}

func readSeal(ctx context.Context, q eventstore.Querier, after, hi eventstore.Position, limit int) ([]sealRow, error) {
	rows, err := q.Query(ctx, `SELECT transaction_id, "offset", event_id, seq, hash FROM `+sealTable+`
		WHERE (transaction_id, "offset") > ($1::xid8, $2) AND (transaction_id, "offset") <= ($3::xid8, $4)
		ORDER BY transaction_id, "offset" LIMIT $5`, after.TransactionID, after.Offset, hi.TransactionID, hi.Offset, limit)
	if err != nil {
		return nil, fmt.Errorf("read seal: %w", err)
	}
	out, err := collectSealRows(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("read seal: %w", err)
	}
	return out, nil
}

// collectSealRows reads rows of (transaction_id, offset, event_id, seq,
// hash) from their raw values when they come in binary, as pgx asks by
// default (Scan cost about as much as hashing the event); otherwise it
// scans.
func collectSealRows(rows pgx.Rows, limit int) ([]sealRow, error) {
	defer rows.Close()
	fds := rows.FieldDescriptions()
	raw := len(fds) == 5
	for i, oid := range []uint32{pgtype.XID8OID, pgtype.Int8OID, 0, pgtype.Int8OID, pgtype.ByteaOID} {
		raw = raw && (oid == 0 || fds[i].DataTypeOID == oid && fds[i].Format == pgtype.BinaryFormatCode)
	}
	out := make([]sealRow, 0, min(limit, 1024))
	for rows.Next() {
		if !raw {
			s, err := scanSealRow(rows)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
			continue
		}
		v := rows.RawValues()
		var s sealRow
		if len(v[0]) != 8 || len(v[1]) != 8 || v[2] == nil || len(v[3]) != 8 {
			return nil, errors.New("unexpected seal row layout")
		}
		s.TransactionID, s.Offset = binary.BigEndian.Uint64(v[0]), int64(binary.BigEndian.Uint64(v[1]))
		s.EventID, s.Seq = string(v[2]), int64(binary.BigEndian.Uint64(v[3]))
		if len(v[4]) != len(s.Hash) {
			return nil, fmt.Errorf("seal at %s: hash of %d bytes", s.Position, len(v[4]))
		}
		copy(s.Hash[:], v[4])
		out = append(out, s)
	}
	return out, rows.Err()
}

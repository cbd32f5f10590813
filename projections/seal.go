package projections

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/jackc/pgx/v5"

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

// SealName is the seal projection's name.
const SealName = "audit_seal"

const sealTable = "audit_seal"

// sealFormat starts every canonical encoding, so a future encoding can never
// produce the same bytes for a different meaning.
const sealFormat = "tradeops-seal/1"

var sealColumns = []string{"transaction_id", "offset", "event_id", "seq", "hash"}

// Apply seals the batch, continuing the chain from the table's last link.
// It hashes each event's stored form (Event.Stored), not its upcast payload.
func (AuditSeal) Apply(ctx context.Context, tx pgx.Tx, t Tables, events []eventstore.Event) error {
	tip, err := readSealTip(ctx, tx, t)
	if err != nil {
		return err
	}
	c := newChain(tip)
	rows := make([][]any, len(events))
	for i, e := range events {
		h := c.add(rawOf(e))
		rows[i] = []any{e.TransactionID, e.Offset, e.ID, c.count, h[:]}
	}
	_, err = tx.CopyFrom(ctx, t.Of(sealTable), sealColumns, pgx.CopyFromRows(rows))
	return err
}

// Hash is a link of the chain.
type Hash [sha256.Size]byte

// rawEvent is an event exactly as stored.
type rawEvent struct {
	eventstore.Position
	ID            string
	StreamID      string
	StreamVersion int64
	Type          string
	SchemaVersion int32
	RecordedAt    time.Time
	Metadata      []byte // nil when NULL
	Payload       []byte // nil when NULL
}

// rawOf is e as stored.
func rawOf(e eventstore.Event) rawEvent {
	return rawEvent{Position: e.Position, ID: e.ID, StreamID: e.StreamID, StreamVersion: e.StreamVersion, Type: e.Type,
		SchemaVersion: int32(e.Stored.SchemaVersion), RecordedAt: e.RecordedAt, Metadata: e.Stored.Metadata, Payload: e.Stored.Data}
}

// chain computes links; it reuses its buffers, so sealing costs no
// allocation per event.
type chain struct {
	prev  Hash
	count int64
	h     hash.Hash
	buf   []byte
}

func newChain(tip sealRow) *chain {
	return &chain{prev: tip.Hash, count: tip.Seq, h: sha256.New()}
}

// add links e to the chain and returns its hash.
func (c *chain) add(e rawEvent) Hash {
	c.buf = canonical(c.buf[:0], e)
	c.h.Reset()
	c.h.Write(c.prev[:])
	c.h.Write(c.buf)
	c.h.Sum(c.prev[:0])
	c.count++
	return c.prev
}

// canonical appends the deterministic encoding of e: the format tag, then
// every field in a fixed order, strings and bytes length-prefixed, numbers
// fixed-width big-endian, so two different events never encode alike.
func canonical(b []byte, e rawEvent) []byte {
	b = appendBytes(b, []byte(sealFormat))
	b = appendBytes(b, []byte(e.ID))
	b = appendBytes(b, []byte(e.StreamID))
	b = binary.BigEndian.AppendUint64(b, uint64(e.StreamVersion))
	b = appendBytes(b, []byte(e.Type))
	b = binary.BigEndian.AppendUint32(b, uint32(e.SchemaVersion))
	b = appendBytes(b, []byte(e.RecordedAt.UTC().Format(time.RFC3339Nano)))
	b = appendBytes(b, e.Metadata)
	b = appendBytes(b, e.Payload)
	b = binary.BigEndian.AppendUint64(b, e.TransactionID)
	return binary.BigEndian.AppendUint64(b, uint64(e.Offset))
}

// nullLength marks a NULL column, distinct from an empty one.
const nullLength = ^uint32(0)

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.BigEndian.AppendUint32(b, nullLength)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

const rawColumns = `transaction_id, "offset", uuid, stream_id, stream_version, event_type, schema_version, recorded_at, metadata::text, payload::text`

// readRaw reads up to limit events after lo up to hi, in store order. The
// verifier bounds hi by a position that was already read gap-free (the
// seal's checkpoint), so no in-flight transaction can still add a row below it.
func readRaw(ctx context.Context, q eventstore.Querier, lo, hi eventstore.Position, limit int) ([]rawEvent, error) {
	rows, err := q.Query(ctx, `SELECT `+rawColumns+` FROM `+eventstore.Table+`
		WHERE (transaction_id, "offset") > ($1::xid8, $2) AND (transaction_id, "offset") <= ($3::xid8, $4)
		ORDER BY transaction_id, "offset" LIMIT $5`, lo.TransactionID, lo.Offset, hi.TransactionID, hi.Offset, limit)
	if err != nil {
		return nil, fmt.Errorf("read raw events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rawEvent, error) {
		var e rawEvent
		err := row.Scan(&e.TransactionID, &e.Offset, &e.ID, &e.StreamID, &e.StreamVersion, &e.Type, &e.SchemaVersion,
			&e.RecordedAt, &e.Metadata, &e.Payload)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read raw events: %w", err)
	}
	return out, nil
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
	out, err := pgx.CollectRows(rows, scanSealRow)
	if err != nil {
		return nil, fmt.Errorf("read seal: %w", err)
	}
	return out, nil
}

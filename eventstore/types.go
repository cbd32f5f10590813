package eventstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Topic is the watermill topic whose table holds every event.
const Topic = "events"

// Table is the SQL name of the event table (watermill's "watermill_<topic>").
const Table = `"watermill_events"`

// LagColumns is two SQL select columns saying how far the position after
// (a row expression such as (c.transaction_id, c."offset")) is behind the
// readable stream: how many events below the xmin horizon come after it,
// and the age in seconds of the oldest of them (0 when none). The status of
// projections and of the export share it. It reads the index range after
// the position: status queries run it about once a second.
func LagColumns(after string) string {
	return `(SELECT count(*) FROM ` + Table + ` e
		WHERE (e.transaction_id, e."offset") > ` + after + `
		AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())),
	coalesce(extract(epoch FROM now() - (SELECT e.recorded_at FROM ` + Table + ` e
		WHERE (e.transaction_id, e."offset") > ` + after + `
		AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY e.transaction_id, e."offset" LIMIT 1)), 0)::float8`
}

// ErrConcurrency is returned when an append's expected version does not match
// the stream, including when a concurrent append won the race. The store
// knows nothing of the domain: the adapters that append a command's events
// classify it (domain.ErrConcurrency).
var ErrConcurrency = errors.New("eventstore: the stream was changed concurrently (expected version mismatch)")

// ExpectedVersion is what an append expects the stream's current version to be.
// A stream's first event has version 1, so NoStream (0) means "must not exist".
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// NoStream requires the stream to have no events yet.
	NoStream ExpectedVersion = 0
)

// Exact expects the stream to be at version v.
func Exact(v int64) ExpectedVersion { return ExpectedVersion(v) }

// Position is a place in the store's total order and the only valid form of a
// checkpoint: an offset alone would skip events committed out of order.
type Position struct {
	TransactionID uint64 `json:"transaction_id"`
	Offset        int64  `json:"offset"`
}

// Start is the position before every event.
var Start = Position{}

// Less reports whether p comes before q in store order.
func (p Position) Less(q Position) bool {
	if p.TransactionID != q.TransactionID {
		return p.TransactionID < q.TransactionID
	}
	return p.Offset < q.Offset
}

// String renders p as "transaction_id:offset", the form ParsePosition reads.
func (p Position) String() string {
	return strconv.FormatUint(p.TransactionID, 10) + ":" + strconv.FormatInt(p.Offset, 10)
}

// ParsePosition reads the "transaction_id:offset" form.
func ParsePosition(s string) (Position, error) {
	xid, off, ok := strings.Cut(s, ":")
	if !ok {
		return Position{}, fmt.Errorf("position %q: want TRANSACTION_ID:OFFSET", s)
	}
	x, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: transaction id: %w", s, err)
	}
	o, err := strconv.ParseInt(off, 10, 64)
	if err != nil || o < 0 {
		return Position{}, fmt.Errorf("position %q: offset must be a non-negative integer", s)
	}
	return Position{TransactionID: x, Offset: o}, nil
}

// Metadata travels with every event. It never holds a secret.
type Metadata struct {
	ActorID       string `json:"actor_id,omitempty"`
	ActorEmail    string `json:"actor_email,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	ClientIP      string `json:"client_ip,omitempty"`
}

// NewEvent is an event to append. Type is a stable audit name from the domain
// catalogue, never a Go type name; Data is the JSON payload at SchemaVersion.
type NewEvent struct {
	ID            string // optional; a UUIDv7 is generated when empty
	Type          string
	SchemaVersion int
	Data          json.RawMessage
}

// Event is a stored event.
type Event struct {
	Position
	ID            string
	StreamID      string
	StreamVersion int64
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      Metadata
	RecordedAt    time.Time
	// Stored is the event exactly as stored, before upcasting and metadata
	// parsing: what tamper evidence hashes.
	Stored Stored
}

// Stored is the stored form of an event's versioned parts. Data and
// Metadata are nil when the column is NULL.
type Stored struct {
	SchemaVersion int
	Data          []byte
	Metadata      []byte
}

// AppendResult tells where an append landed.
type AppendResult struct {
	// Version is the stream's version after the append.
	Version int64
	// IDs are the appended events' ids, in order.
	IDs []string
	// RecordedAt is the events' recorded_at (UTC, microseconds).
	RecordedAt time.Time
}

package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier is what the store needs of a connection: a pool for autocommit
// work, or a pgx.Tx when events must commit with other rows.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Observer is told how each append went; metrics implement it.
type Observer interface {
	ObserveAppend(d time.Duration, events int, err error)
}

// Store appends and reads events.
type Store struct {
	pool      *pgxpool.Pool
	now       func() time.Time
	observer  Observer
	upcasters map[string]Upcaster
}

// Upcaster brings a payload stored at an older schema version up to the
// current one. It is called until it returns the version it was given.
type Upcaster func(version int, data json.RawMessage) (int, json.RawMessage, error)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for recorded_at (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithObserver reports every append's latency and outcome.
func WithObserver(o Observer) Option { return func(s *Store) { s.observer = o } }

// WithUpcaster registers the upcaster for an event type.
func WithUpcaster(eventType string, u Upcaster) Option {
	return func(s *Store) { s.upcasters[eventType] = u }
}

// New returns a store over pool.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, now: time.Now, upcasters: map[string]Upcaster{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Pool is the store's connection pool, for commands that must write state
// rows in the same transaction as their events (see AppendTx).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Append appends events to stream in one autocommit statement. With an
// exact version a mismatch returns ErrConcurrency. With Any, appends to one
// stream queue on a transaction-scoped advisory lock (sent in the same round
// trip), so they never race each other; a race lost to a concurrent
// exact-version append is retried a few times.
func (s *Store) Append(ctx context.Context, stream string, expected ExpectedVersion, md Metadata, events ...NewEvent) (AppendResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := s.append(ctx, s.pool, stream, expected, md, events)
		if expected == Any && errors.Is(err, ErrConcurrency) && attempt < 5 {
			continue
		}
		return res, err
	}
}

// AppendTx appends inside tx, so the events commit or roll back together
// with whatever else the command writes in tx. With Any, the stream's lock
// is held until tx ends (other Any appends to the stream wait for it), and a
// lost race is retried inside a savepoint so tx stays usable; the retry only
// helps in READ COMMITTED, where each statement takes a new snapshot.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, stream string, expected ExpectedVersion, md Metadata, events ...NewEvent) (AppendResult, error) {
	if expected != Any {
		return s.append(ctx, tx, stream, expected, md, events)
	}
	for attempt := 0; ; attempt++ {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return AppendResult{}, fmt.Errorf("append savepoint: %w", err)
		}
		res, err := s.append(ctx, sp, stream, expected, md, events)
		if err == nil {
			return res, sp.Commit(ctx)
		}
		_ = sp.Rollback(ctx)
		if !errors.Is(err, ErrConcurrency) || attempt >= 5 {
			return res, err
		}
	}
}

func (s *Store) append(ctx context.Context, q Querier, stream string, expected ExpectedVersion, md Metadata, events []NewEvent) (res AppendResult, err error) {
	start := time.Now()
	query, res, err := s.appendQuery(stream, expected, md, events)
	if err != nil {
		return AppendResult{}, err
	}
	if s.observer != nil {
		defer func() { s.observer.ObserveAppend(time.Since(start), len(events), err) }()
	}
	var rows pgx.Rows
	if b, ok := q.(batcher); ok && expected == Any {
		// Any appenders of one stream queue on a transaction-scoped advisory
		// lock, taken in the same round trip and the same (implicit or
		// caller's) transaction as the INSERT. The INSERT's snapshot is taken
		// after the lock is granted, so it sees the previous holder's
		// committed version instead of racing it into a unique violation:
		// without the lock, 50 concurrent Any appends to one stream exhausted
		// their retries and returned ErrConcurrency.
		batch := &pgx.Batch{}
		batch.Queue(lockStreamSQL, stream)
		batch.Queue(query.Query, query.Args...)
		br := b.SendBatch(ctx, batch)
		if _, err = br.Exec(); err == nil {
			rows, _ = br.Query() // its error comes back from rows.Err
			res.Version, err = appendedVersion(rows, len(events))
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	} else if rows, err = q.Query(ctx, query.Query, query.Args...); err == nil {
		res.Version, err = appendedVersion(rows, len(events))
	}
	if err != nil {
		return AppendResult{}, classify(err)
	}
	return res, nil
}

// QueueAppend queues the append of events to stream on b, for a command
// that sends its events in the same round trip as its other statements: a
// batch that ends with COMMIT, or a batch that is a transaction of its own
// (pgx sends a batch as one implicit transaction). The guarantees are
// Append's; expected must be exact or NoStream (Any's lock needs a round
// trip of its own). read takes the batch's results at the append's turn.
func (s *Store) QueueAppend(b *pgx.Batch, stream string, expected ExpectedVersion, md Metadata, events ...NewEvent) (read func(pgx.BatchResults) (AppendResult, error), err error) {
	if expected == Any {
		return nil, errors.New("append: QueueAppend needs an exact expected version or NoStream")
	}
	start := time.Now()
	query, res, err := s.appendQuery(stream, expected, md, events)
	if err != nil {
		return nil, err
	}
	b.Queue(query.Query, query.Args...)
	return func(br pgx.BatchResults) (_ AppendResult, err error) {
		if s.observer != nil {
			defer func() { s.observer.ObserveAppend(time.Since(start), len(events), err) }()
		}
		rows, _ := br.Query() // its error comes back from rows.Err
		if res.Version, err = appendedVersion(rows, len(events)); err != nil {
			return AppendResult{}, classify(err)
		}
		return res, nil
	}, nil
}

// appendQuery checks an append and builds its statement.
func (s *Store) appendQuery(stream string, expected ExpectedVersion, md Metadata, events []NewEvent) (query wsql.Query, res AppendResult, err error) {
	if len(events) == 0 {
		return query, res, errors.New("append: no events")
	}
	if stream == "" {
		return query, res, errors.New("append: empty stream id")
	}
	if expected < Any {
		return query, res, fmt.Errorf("append: invalid expected version %d", expected)
	}
	// The column gets the time (binary, no parsing on the server); the
	// metadata, like every watermill message's, its text.
	recordedAt := s.now().UTC().Truncate(time.Microsecond)
	res.RecordedAt = recordedAt
	at := recordedAt.Format(time.RFC3339Nano)
	inserts := make([]insertRow, len(events))
	res.IDs = make([]string, len(events))
	for i, e := range events {
		if e.Type == "" || e.SchemaVersion < 1 || !json.Valid(e.Data) {
			return query, res, fmt.Errorf("append: event %d: need a type, a schema version ≥ 1 and JSON data", i)
		}
		id := e.ID
		if id == "" {
			id = uuid.Must(uuid.NewV7()).String()
		}
		res.IDs[i] = id
		inserts[i] = insertRow{id: id, payload: e.Data, metadata: appendMetadataJSON(nil, md, stream, e, expected, at),
			eventType: e.Type, schemaVersion: int32(e.SchemaVersion)}
	}
	return insertQuery(stream, int64(expected), recordedAt, inserts), res, nil
}

// appendedVersion reads the RETURNING stream_version rows of an append of
// n events: the stream's version after it is the highest (RETURNING's row
// order is not guaranteed).
func appendedVersion(rows pgx.Rows, n int) (int64, error) {
	defer rows.Close()
	var top, v int64
	got := 0
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return 0, err
		}
		top, got = max(top, v), got+1
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("%d of %d events inserted", got, n)
	}
	return top, nil
}

// lockStreamSQL serialises Any appends to one stream until the appending
// transaction ends. The two-key form keeps the store's locks apart from
// single-key advisory locks (migrations); the class id spells "EVTS".
const lockStreamSQL = `SELECT pg_advisory_xact_lock(1163285587, hashtext($1))`

// batcher is implemented by *pgxpool.Pool and pgx.Tx.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// appendMetadataJSON appends the metadata stored with an event: the
// watermill message metadata, the bytes json.Marshal gives for the map of
// md's non-empty fields and the stream keys (keys sorted, strings escaped
// as encoding/json does), without building the map.
func appendMetadataJSON(b []byte, md Metadata, stream string, e NewEvent, expected ExpectedVersion, recordedAt string) []byte {
	b = append(b, '{')
	sep := false
	field := func(key, v string) {
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		b = appendMarshaledString(b, v)
	}
	optional := func(key, v string) {
		if v != "" {
			field(key, v)
		}
	}
	// In key order.
	optional("actor_email", md.ActorEmail)
	optional("actor_id", md.ActorID)
	optional("causation_id", md.CausationID)
	optional("client_ip", md.ClientIP)
	optional("correlation_id", md.CorrelationID)
	field(mdEventType, e.Type)
	field(mdExpectedVersion, strconv.FormatInt(int64(expected), 10))
	field(mdRecordedAt, recordedAt)
	field(mdSchemaVersion, strconv.Itoa(e.SchemaVersion))
	field(mdStreamID, stream)
	return append(b, '}')
}

// appendMarshaledString appends s as json.Marshal encodes it.
func appendMarshaledString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			// encoding/json's escaping (HTML-safe, U+2028/9, invalid
			// UTF-8 as U+FFFD) for the rare value that needs any.
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// classify turns the append's constraint violations into ErrConcurrency.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505" && pgErr.ConstraintName == "events_stream_version_key",
			pgErr.Code == "23502" && pgErr.ColumnName == "stream_version":
			return ErrConcurrency
		}
	}
	return fmt.Errorf("append: %w", err)
}

// Filter narrows a read. Zero fields do not filter.
type Filter struct {
	Stream     string
	TypePrefix string
	ActorID    string
	Since      time.Time // recorded_at >= Since
	Until      time.Time // recorded_at < Until
}

// Read returns up to limit events after `after`, in store order, skipping
// none: only transactions below the snapshot's xmin are read, so a slower
// transaction that took a lower offset is never overtaken.
func (s *Store) Read(ctx context.Context, after Position, limit int, f Filter) ([]Event, error) {
	return s.ReadIn(ctx, s.pool, after, limit, f)
}

// ReadIn is Read on a given connection or transaction (projection runners
// read and write their checkpoint in one transaction).
func (s *Store) ReadIn(ctx context.Context, q Querier, after Position, limit int, f Filter) ([]Event, error) {
	if limit <= 0 {
		return nil, errors.New("read: limit must be positive")
	}
	sql, args := readSQL(eventColumns, after, limit, f)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return s.collect(rows, limit)
}

// ReadStoredIn is ReadIn for a reader of the stored form only (the audit
// seal hashes nothing else): no upcaster runs and Metadata is left zero
// (Stored.Metadata holds the bytes), so no time goes into decoding what the
// reader would not look at.
func (s *Store) ReadStoredIn(ctx context.Context, q Querier, after Position, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, errors.New("read: limit must be positive")
	}
	sql, args := readSQL(eventColumns, after, limit, Filter{})
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out, err := collectEvents(rows, limit, true)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// EachInRange calls f with each of up to limit events in (after, upTo], in
// store order, exactly as stored (no upcaster runs), without copying them:
// f's RawEvent borrows the connection's read buffer and is valid only until
// f returns. It returns how many events it read. Unlike ReadIn it does not
// stop at the snapshot's xmin, so upTo must be a position read gap-free
// before (a checkpoint): no transaction in flight can still add an event at
// or below it. Tamper evidence reads this way (the audit seal's verifier
// hashes each row as it arrives, so a million events cost no allocation
// each).
func EachInRange(ctx context.Context, q Querier, after, upTo Position, limit int, f func(*RawEvent) error) (int, error) {
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM `+Table+`
		WHERE (transaction_id, "offset") > ($1::text::xid8, $2) AND (transaction_id, "offset") <= ($3::text::xid8, $4)
		ORDER BY transaction_id, "offset" LIMIT $5`,
		strconv.FormatUint(after.TransactionID, 10), after.Offset, strconv.FormatUint(upTo.TransactionID, 10), upTo.Offset, limit)
	return countRows(rows, err, f)
}

// EachAfter calls f with each of up to limit events after `after`, in store
// order, exactly as stored and without copying them, as EachInRange does,
// but gap-free like ReadIn: only transactions below the snapshot's xmin are
// read. A reader of the stored bytes that keeps only what it derives from
// them (the seal's re-seal keeps each event's link) reads this way, with no
// Event and no allocation per event.
func EachAfter(ctx context.Context, q Querier, after Position, limit int, f func(*RawEvent) error) (int, error) {
	if limit <= 0 {
		return 0, errors.New("read: limit must be positive")
	}
	sql, args := readSQL(eventColumns, after, limit, Filter{})
	rows, err := q.Query(ctx, sql, args...)
	return countRows(rows, err, f)
}

// countRows calls f with each row of a raw read (err is its Query's) and
// counts them.
func countRows(rows pgx.Rows, err error, f func(*RawEvent) error) (int, error) {
	if err != nil {
		return 0, fmt.Errorf("read events: %w", err)
	}
	n := 0
	err = eachRow(rows, func(r *RawEvent) error {
		n++
		return f(r)
	})
	if err != nil {
		return n, fmt.Errorf("read events: %w", err)
	}
	return n, nil
}

// readSQL is the gap-free keyset read of up to limit events after `after`
// matching f, selecting columns. Replay shares it with ReadIn.
func readSQL(columns string, after Position, limit int, f Filter) (string, []any) {
	where := []string{`(transaction_id, "offset") > ($1::text::xid8, $2)`, `transaction_id < pg_snapshot_xmin(pg_current_snapshot())`}
	args := []any{strconv.FormatUint(after.TransactionID, 10), after.Offset}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Stream != "" {
		add("stream_id = ?", f.Stream)
	}
	if f.TypePrefix != "" {
		add("starts_with(event_type, ?)", f.TypePrefix)
	}
	if f.ActorID != "" {
		add("metadata->>'actor_id' = ?", f.ActorID)
	}
	if !f.Since.IsZero() {
		add("recorded_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		add("recorded_at < ?", f.Until)
	}
	args = append(args, limit)
	return `SELECT ` + columns + ` FROM ` + Table + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY transaction_id, "offset" LIMIT $` + strconv.Itoa(len(args)), args
}

// ReadStream returns the events of one stream with a version above
// afterVersion, in version order (aggregate loading).
func (s *Store) ReadStream(ctx context.Context, q Querier, stream string, afterVersion int64) ([]Event, error) {
	if q == nil {
		q = s.pool
	}
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM `+Table+
		` WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version`, stream, afterVersion)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return s.collect(rows, 64)
}

// collect decodes rows (eventColumns, at most limit) and upcasts the events.
func (s *Store) collect(rows pgx.Rows, limit int) ([]Event, error) {
	out, err := collectEvents(rows, limit, false)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	if len(s.upcasters) > 0 {
		for i := range out {
			if err := s.upcast(&out[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (s *Store) upcast(e *Event) error {
	up, ok := s.upcasters[e.Type]
	if !ok {
		return nil
	}
	for {
		v, data, err := up(e.SchemaVersion, e.Data)
		if err != nil {
			return fmt.Errorf("upcast %s v%d (event %s): %w", e.Type, e.SchemaVersion, e.ID, err)
		}
		if v == e.SchemaVersion {
			return nil
		}
		e.SchemaVersion, e.Data = v, data
	}
}

// Head is the position of the last event a reader can see now.
func (s *Store) Head(ctx context.Context) (Position, error) {
	var p Position
	var xid int64
	err := s.pool.QueryRow(ctx, `SELECT transaction_id::text::bigint AS xid, "offset" FROM `+Table+`
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY transaction_id DESC, "offset" DESC LIMIT 1`).Scan(&xid, &p.Offset)
	if errors.Is(err, pgx.ErrNoRows) {
		return Start, nil
	}
	if err != nil {
		return Position{}, fmt.Errorf("head: %w", err)
	}
	p.TransactionID = uint64(xid)
	return p, nil
}

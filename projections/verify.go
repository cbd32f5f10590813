package projections

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
)

// SealHead is the end of the chain, as `tradeops audit head` exports it for
// safekeeping outside the database: whoever rewrites the stream and re-seals
// it cannot make an exported head match again.
type SealHead struct {
	Position eventstore.Position
	EventID  string
	Hash     Hash
	Count    int64
}

type sealHeadJSON struct {
	Position string `json:"position"`
	EventID  string `json:"event_id"`
	Hash     string `json:"hash"`
	Count    int64  `json:"count"`
}

func (h SealHead) MarshalJSON() ([]byte, error) {
	return json.Marshal(sealHeadJSON{h.Position.String(), h.EventID, hex.EncodeToString(h.Hash[:]), h.Count})
}

func (h *SealHead) UnmarshalJSON(b []byte) error {
	var j sealHeadJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	pos, err := eventstore.ParsePosition(j.Position)
	if err != nil {
		return err
	}
	sum, err := hex.DecodeString(j.Hash)
	if err != nil || len(sum) != len(h.Hash) {
		return fmt.Errorf("hash: want %d hex-encoded bytes", len(h.Hash))
	}
	if j.Count < 0 {
		return errors.New("count must not be negative")
	}
	*h = SealHead{Position: pos, EventID: j.EventID, Count: j.Count}
	copy(h.Hash[:], sum)
	return nil
}

// ReadSealHead returns the last link of the live chain.
func ReadSealHead(ctx context.Context, q eventstore.Querier) (SealHead, error) {
	tip, err := readSealTip(ctx, q, liveTables)
	return SealHead{Position: tip.Position, EventID: tip.EventID, Hash: tip.Hash, Count: tip.Seq}, err
}

// Break is the first place where the stream and its seal disagree.
type Break struct {
	Position eventstore.Position
	EventID  string
	// Kind is "altered" (the event or its seal row changed), "deleted" (the
	// seal has an event the stream lacks), "inserted" (the stream has an
	// event the seal lacks), "reordered" (another event sits where the seal
	// has this one), "truncated" (the stream ends before the seal does) or
	// "head" (an exported head is no longer part of the chain).
	Kind   string
	Detail string
}

func (b *Break) String() string {
	return fmt.Sprintf("%s at position %s, event %s: %s", b.Kind, b.Position, b.EventID, b.Detail)
}

// Report is what Verify found.
type Report struct {
	// Verified counts the events whose links matched, up to the break.
	Verified int64
	// Head is the chain's head as recomputed from the stream (zero after
	// a break).
	Head SealHead
	// Unsealed counts the events after the seal's checkpoint (the live
	// seal has not reached them yet; they are not verified).
	Unsealed int64
	Break    *Break
}

// verifyBatch is the page size of Verify's reads.
const verifyBatch = 10000

// Verify recomputes the hash chain from the event table and compares it
// with audit_seal link by link, in one consistent snapshot, stopping at the
// first break. With against, it also checks that the exported head is still
// a link of today's chain.
func Verify(ctx context.Context, pool *pgxpool.Pool, against *SealHead) (Report, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Report{}, fmt.Errorf("verify: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	v, err := newVerifier(ctx, tx, against)
	if err != nil {
		return Report{}, err
	}
	stop, err := v.readAhead(ctx, pool, tx)
	if err != nil {
		return Report{}, err
	}
	defer stop()
	return v.finish(ctx)
}

// readAhead makes the verifier read the stream on a second connection, in
// tx's snapshot (exported and imported), one batch ahead of the hashing:
// reading and hashing overlap instead of taking turns.
func (v *verifier) readAhead(ctx context.Context, pool *pgxpool.Pool, tx pgx.Tx) (stop func(), err error) {
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("verify: export snapshot: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rtx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err == nil {
		_, err = rtx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+strings.ReplaceAll(snapshot, "'", "''")+`'`)
	}
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("verify: import snapshot: %w", err)
	}
	type result struct {
		events []eventstore.Event
		err    error
	}
	readCtx, cancel := context.WithCancel(ctx)
	batches := make(chan result, 1)
	go func() {
		defer close(batches)
		for after := v.after; ; {
			evs, err := eventstore.ReadRange(readCtx, rtx, after, v.bound, verifyBatch)
			select {
			case batches <- result{evs, err}:
			case <-readCtx.Done():
				return
			}
			if err != nil || len(evs) < verifyBatch {
				return
			}
			after = evs[len(evs)-1].Position
		}
	}()
	v.read = func(context.Context) ([]eventstore.Event, error) {
		r, ok := <-batches
		if !ok {
			return nil, errors.New("verify: the read-ahead stopped")
		}
		return r.events, r.err
	}
	return func() {
		cancel()
		for range batches { // drain: the reader ends once it can no longer send
		}
		_ = rtx.Rollback(context.WithoutCancel(ctx))
		conn.Release()
	}, nil
}

// StreamVerifier checks the seal alongside a stream of events (a replay):
// Check each event as it goes by, and the verifier recomputes the chain up
// to it from the stored bytes — every event, whatever the replay's filters —
// comparing link by link with audit_seal. Unlike Verify it reads no single
// snapshot, so it can follow a live stream: the seal's reach is re-read when
// the stream overtakes it.
type StreamVerifier struct {
	v   *verifier
	brk *Break
}

// NewStreamVerifier starts a chain walk from the start of the stream.
func NewStreamVerifier(ctx context.Context, q eventstore.Querier) (*StreamVerifier, error) {
	v, err := newVerifier(ctx, q, nil)
	if err != nil {
		return nil, err
	}
	return &StreamVerifier{v: v}, nil
}

// Check verifies the chain up to and including the event at pos; it returns
// the first break at or before pos (and keeps returning it). An event the
// seal has not reached yet is not checked.
func (s *StreamVerifier) Check(ctx context.Context, pos eventstore.Position) (*Break, error) {
	if s.brk != nil {
		return s.brk, nil
	}
	if s.v.bound.Less(pos) {
		if err := s.v.readBound(ctx); err != nil {
			return nil, err
		}
	}
	for s.v.after.Less(pos) {
		e, ok, err := s.v.nextEvent(ctx)
		if err != nil || !ok {
			return nil, err
		}
		if s.brk, err = s.v.check(ctx, e); err != nil || s.brk != nil {
			return s.brk, err
		}
	}
	return nil, nil
}

// Finish verifies the rest of the sealed chain, as far as the seal reaches
// now, as Verify does.
func (s *StreamVerifier) Finish(ctx context.Context) (Report, error) {
	if s.brk != nil {
		return Report{Verified: s.v.verified, Break: s.brk}, nil
	}
	if err := s.v.readBound(ctx); err != nil {
		return Report{}, err
	}
	return s.v.finish(ctx)
}

// verifier walks the stream and the seal side by side.
type verifier struct {
	q         eventstore.Querier
	bound     eventstore.Position // the seal's reach: later events are unsealed
	against   *SealHead
	chain     *chain
	last      eventstore.Event
	verified  int64
	headSeen  bool
	after     eventstore.Position // the last stream event walked
	events    []eventstore.Event
	eventsEnd bool
	// read returns the next batch of events after v.after up to v.bound;
	// nil reads on q.
	read      func(context.Context) ([]eventstore.Event, error)
	seals     []sealRow
	sealAfter eventstore.Position
	sealsEnd  bool
}

func newVerifier(ctx context.Context, q eventstore.Querier, against *SealHead) (*verifier, error) {
	v := &verifier{q: q, against: against, chain: newChain(sealRow{})}
	return v, v.readBound(ctx)
}

// readBound reads how far the seal reaches: its checkpoint, or its last link
// if that is further (a seal row past the checkpoint is itself a break to
// report).
func (v *verifier) readBound(ctx context.Context) error {
	var b eventstore.Position
	err := v.q.QueryRow(ctx, `SELECT transaction_id, "offset" FROM (
			SELECT transaction_id, "offset" FROM projection_checkpoints WHERE name = $1
			UNION ALL
			(SELECT transaction_id, "offset" FROM `+sealTable+` ORDER BY transaction_id DESC, "offset" DESC LIMIT 1)
		) b ORDER BY transaction_id DESC, "offset" DESC LIMIT 1`, SealName).Scan(&b.TransactionID, &b.Offset)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("verify: seal checkpoint: %w", err)
	}
	if v.bound.Less(b) { // more to read on both sides
		v.bound, v.eventsEnd, v.sealsEnd = b, false, false
	}
	return nil
}

// finish walks the rest of the stream up to the seal's reach and reports.
func (v *verifier) finish(ctx context.Context) (Report, error) {
	var rep Report
	for rep.Break == nil {
		e, ok, err := v.nextEvent(ctx)
		if err != nil {
			return Report{}, err
		}
		if !ok {
			break
		}
		if rep.Break, err = v.check(ctx, e); err != nil {
			return Report{}, err
		}
	}
	if rep.Break == nil {
		var err error
		if rep.Break, err = v.leftovers(ctx); err != nil {
			return Report{}, err
		}
	}
	rep.Verified = v.verified
	if rep.Break == nil {
		rep.Head = v.head()
	}
	err := v.q.QueryRow(ctx, `SELECT count(*) FROM `+eventstore.Table+` WHERE (transaction_id, "offset") > ($1::xid8, $2)`,
		v.bound.TransactionID, v.bound.Offset).Scan(&rep.Unsealed)
	if err != nil {
		return Report{}, fmt.Errorf("verify: count unsealed events: %w", err)
	}
	return rep, nil
}

// nextEvent returns the next stream event, valid until the next call.
func (v *verifier) nextEvent(ctx context.Context) (*eventstore.Event, bool, error) {
	if len(v.events) == 0 && !v.eventsEnd {
		var evs []eventstore.Event
		var err error
		if v.read != nil {
			evs, err = v.read(ctx)
		} else {
			evs, err = eventstore.ReadRange(ctx, v.q, v.after, v.bound, verifyBatch)
		}
		if err != nil {
			return nil, false, fmt.Errorf("verify: %w", err)
		}
		v.events, v.eventsEnd = evs, len(evs) < verifyBatch
	}
	if len(v.events) == 0 {
		return nil, false, nil
	}
	e := &v.events[0]
	v.events, v.after = v.events[1:], e.Position
	return e, true, nil
}

func (v *verifier) peekSeal(ctx context.Context) (sealRow, bool, error) {
	if len(v.seals) == 0 && !v.sealsEnd {
		rows, err := readSeal(ctx, v.q, v.sealAfter, v.bound, verifyBatch)
		if err != nil {
			return sealRow{}, false, err
		}
		v.seals, v.sealsEnd = rows, len(rows) < verifyBatch
		if len(rows) > 0 {
			v.sealAfter = rows[len(rows)-1].Position
		}
	}
	if len(v.seals) == 0 {
		return sealRow{}, false, nil
	}
	return v.seals[0], true, nil
}

// check links the next stream event and compares it with the seal.
func (v *verifier) check(ctx context.Context, e *eventstore.Event) (*Break, error) {
	s, ok, err := v.peekSeal(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok || e.Position.Less(s.Position):
		return &Break{Position: e.Position, EventID: e.ID, Kind: "inserted",
			Detail: "the stream has an event the seal lacks (inserted after sealing, or quarantined by the seal projection)"}, nil
	case s.Position.Less(e.Position):
		return &Break{Position: s.Position, EventID: s.EventID, Kind: "deleted",
			Detail: fmt.Sprintf("the sealed event is missing from the stream, whose next event is %s at %s", e.ID, e.Position)}, nil
	}
	v.seals = v.seals[1:]
	h := v.chain.add(e)
	switch {
	case e.ID != s.EventID:
		return v.moved(ctx, e, s)
	case h != s.Hash:
		return &Break{Position: e.Position, EventID: e.ID, Kind: "altered",
			Detail: "the event no longer hashes to its seal: its payload, metadata, type, stream, version or time changed (or its seal row did)"}, nil
	case s.Seq != v.chain.count:
		return &Break{Position: e.Position, EventID: e.ID, Kind: "altered",
			Detail: fmt.Sprintf("the seal row says it is link %d, it is link %d", s.Seq, v.chain.count)}, nil
	}
	v.last = *e
	v.verified++
	if a := v.against; a != nil && a.Position == e.Position {
		v.headSeen = true
		if a.EventID != e.ID || a.Hash != h || a.Count != v.chain.count {
			return &Break{Position: e.Position, EventID: e.ID, Kind: "head",
				Detail: fmt.Sprintf("the exported head (event %s, link %d, hash %x) no longer matches the chain (event %s, link %d, hash %x): the stream before it was rewritten and re-sealed",
					a.EventID, a.Count, a.Hash[:8], e.ID, v.chain.count, h[:8])}, nil
		}
	}
	return nil, nil
}

// moved reports an event found where the seal has another one.
func (v *verifier) moved(ctx context.Context, e *eventstore.Event, s sealRow) (*Break, error) {
	var at eventstore.Position
	err := v.q.QueryRow(ctx, `SELECT transaction_id, "offset" FROM `+sealTable+` WHERE event_id = $1 LIMIT 1`, e.ID).
		Scan(&at.TransactionID, &at.Offset)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return &Break{Position: e.Position, EventID: e.ID, Kind: "altered",
			Detail: fmt.Sprintf("the seal has event %s here; the stream's event id was changed", s.EventID)}, nil
	case err != nil:
		return nil, fmt.Errorf("verify: find event %s in the seal: %w", e.ID, err)
	}
	return &Break{Position: e.Position, EventID: e.ID, Kind: "reordered",
		Detail: fmt.Sprintf("this event was sealed at %s; the seal has event %s here", at, s.EventID)}, nil
}

// leftovers reports what the walk left over: sealed events beyond the end
// of the stream, or an exported head the chain never reached.
func (v *verifier) leftovers(ctx context.Context) (*Break, error) {
	s, ok, err := v.peekSeal(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		var missing int64
		err := v.q.QueryRow(ctx, `SELECT count(*) FROM `+sealTable+` WHERE (transaction_id, "offset") >= ($1::xid8, $2)`,
			s.TransactionID, s.Offset).Scan(&missing)
		if err != nil {
			return nil, fmt.Errorf("verify: count missing events: %w", err)
		}
		return &Break{Position: s.Position, EventID: s.EventID, Kind: "truncated",
			Detail: fmt.Sprintf("the stream ends at %s but the seal goes on: its last %d sealed events are missing", v.last.Position, missing)}, nil
	}
	if a := v.against; a != nil && a.Count > 0 && !v.headSeen {
		return &Break{Position: a.Position, EventID: a.EventID, Kind: "head",
			Detail: fmt.Sprintf("the exported head (link %d) is not in today's chain, which ends at %s after %d links: the stream and its seal lost their tail or were rewritten",
				a.Count, v.last.Position, v.chain.count)}, nil
	}
	return nil, nil
}

func (v *verifier) head() SealHead {
	return SealHead{Position: v.last.Position, EventID: v.last.ID, Hash: v.chain.prev, Count: v.chain.count}
}

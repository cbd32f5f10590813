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

// verifyBatch is the page size of Verify's reads (a variable so that tests
// can cross many batch boundaries).
var verifyBatch = 10000

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

// readAhead makes the verifier read and hash the stream on a second
// connection, in tx's snapshot (exported and imported), one batch ahead of
// the comparison with the seal: reading and hashing there overlap reading
// the seal here instead of taking turns.
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
		links []link
		err   error
	}
	readCtx, cancel := context.WithCancel(ctx)
	batches := make(chan result, 1)
	// Three batches circulate — one being compared, one waiting, one being
	// filled — so the reads allocate nothing once they are under way. The
	// verifier starts with one, empty.
	free := make(chan []link, 3)
	free <- nil
	free <- nil
	bound := v.bound
	go func() {
		defer close(batches)
		for {
			var buf []link
			select {
			case buf = <-free:
			case <-readCtx.Done():
				return
			}
			links, err := v.linker.next(readCtx, rtx, bound, buf)
			select {
			case batches <- result{links, err}:
			case <-readCtx.Done():
				return
			}
			if err != nil || len(links) < verifyBatch {
				return
			}
		}
	}()
	v.read = func(_ context.Context, done []link) ([]link, error) {
		free <- done // the verifier is through with it
		r, ok := <-batches
		if !ok {
			return nil, errors.New("verify: the read-ahead stopped")
		}
		return r.links, r.err
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
		l, ok, err := s.v.nextLink(ctx)
		if err != nil || !ok {
			return nil, err
		}
		if s.brk, err = s.v.check(ctx, l); err != nil || s.brk != nil {
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
	q        eventstore.Querier
	bound    eventstore.Position // the seal's reach: later events are unsealed
	against  *SealHead
	linker   linker
	last     link // the last link verified
	verified int64
	headSeen bool
	after    eventstore.Position // the last stream event walked
	links    []link              // the stream's next links, recomputed
	batch    []link              // links' storage, handed back to read
	linksEnd bool
	// read returns the next batch of links after v.after up to v.bound,
	// taking back the previous batch's storage; nil reads on q.
	read      func(ctx context.Context, done []link) ([]link, error)
	seals     []sealRow
	sealAfter eventstore.Position
	sealsEnd  bool
}

// link is an event's link of the chain as recomputed from the stream. The
// event id is kept in place (an id is a UUID, 36 bytes), so a batch of
// links is one allocation, reused.
type link struct {
	eventstore.Position
	Seq    int64
	Hash   Hash
	idLen  int
	idBuf  [36]byte
	idLong string // an id longer than idBuf
}

func (l *link) setID(id []byte) {
	if len(id) > len(l.idBuf) {
		l.idLen, l.idLong = -1, string(id)
		return
	}
	l.idLen, l.idLong = copy(l.idBuf[:], id), ""
}

func (l *link) idIs(id string) bool {
	if l.idLen < 0 {
		return l.idLong == id
	}
	return string(l.idBuf[:l.idLen]) == id // no allocation: compared in place
}

func (l *link) id() string {
	if l.idLen < 0 {
		return l.idLong
	}
	return string(l.idBuf[:l.idLen])
}

// linker recomputes the chain from the start of the stream, a batch at a
// time, hashing each row as it arrives.
type linker struct {
	chain chain
	after eventstore.Position
}

// next appends to dst[:0] the links of the next batch of events up to
// bound.
func (l *linker) next(ctx context.Context, q eventstore.Querier, bound eventstore.Position, dst []link) ([]link, error) {
	if dst == nil {
		dst = make([]link, 0, verifyBatch)
	}
	dst = dst[:0]
	_, err := eventstore.EachInRange(ctx, q, l.after, bound, verifyBatch, func(e *eventstore.RawEvent) error {
		dst = append(dst, link{Position: e.Position, Hash: l.chain.addRaw(e), Seq: l.chain.count})
		dst[len(dst)-1].setID(e.ID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if len(dst) > 0 {
		l.after = dst[len(dst)-1].Position
	}
	return dst, nil
}

func newVerifier(ctx context.Context, q eventstore.Querier, against *SealHead) (*verifier, error) {
	v := &verifier{q: q, against: against}
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
		v.bound, v.linksEnd, v.sealsEnd = b, false, false
	}
	return nil
}

// finish walks the rest of the stream up to the seal's reach and reports.
func (v *verifier) finish(ctx context.Context) (Report, error) {
	var rep Report
	for rep.Break == nil {
		l, ok, err := v.nextLink(ctx)
		if err != nil {
			return Report{}, err
		}
		if !ok {
			break
		}
		if rep.Break, err = v.check(ctx, l); err != nil {
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

// nextLink returns the next stream event's link, valid until the next
// call.
func (v *verifier) nextLink(ctx context.Context) (*link, bool, error) {
	if len(v.links) == 0 && !v.linksEnd {
		var err error
		if v.read != nil {
			v.batch, err = v.read(ctx, v.batch)
		} else {
			v.batch, err = v.linker.next(ctx, v.q, v.bound, v.batch)
		}
		if err != nil {
			return nil, false, err
		}
		v.links, v.linksEnd = v.batch, len(v.batch) < verifyBatch
	}
	if len(v.links) == 0 {
		return nil, false, nil
	}
	l := &v.links[0]
	v.links, v.after = v.links[1:], l.Position
	return l, true, nil
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

// check compares the next stream event's link with the seal.
func (v *verifier) check(ctx context.Context, l *link) (*Break, error) {
	s, ok, err := v.peekSeal(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok || l.Position.Less(s.Position):
		return &Break{Position: l.Position, EventID: l.id(), Kind: "inserted",
			Detail: "the stream has an event the seal lacks (inserted after sealing, or quarantined by the seal projection)"}, nil
	case s.Position.Less(l.Position):
		return &Break{Position: s.Position, EventID: s.EventID, Kind: "deleted",
			Detail: fmt.Sprintf("the sealed event is missing from the stream, whose next event is %s at %s", l.id(), l.Position)}, nil
	}
	v.seals = v.seals[1:]
	switch {
	case !l.idIs(s.EventID):
		return v.moved(ctx, l, s)
	case l.Hash != s.Hash:
		return &Break{Position: l.Position, EventID: l.id(), Kind: "altered",
			Detail: "the event no longer hashes to its seal: its payload, metadata, type, stream, version or time changed (or its seal row did)"}, nil
	case s.Seq != l.Seq:
		return &Break{Position: l.Position, EventID: l.id(), Kind: "altered",
			Detail: fmt.Sprintf("the seal row says it is link %d, it is link %d", s.Seq, l.Seq)}, nil
	}
	v.last = *l
	v.verified++
	if a := v.against; a != nil && a.Position == l.Position {
		v.headSeen = true
		if !l.idIs(a.EventID) || a.Hash != l.Hash || a.Count != l.Seq {
			return &Break{Position: l.Position, EventID: l.id(), Kind: "head",
				Detail: fmt.Sprintf("the exported head (event %s, link %d, hash %x) no longer matches the chain (event %s, link %d, hash %x): the stream before it was rewritten and re-sealed",
					a.EventID, a.Count, a.Hash[:8], l.id(), l.Seq, l.Hash[:8])}, nil
		}
	}
	return nil, nil
}

// moved reports an event found where the seal has another one.
func (v *verifier) moved(ctx context.Context, l *link, s sealRow) (*Break, error) {
	id := l.id()
	var at eventstore.Position
	err := v.q.QueryRow(ctx, `SELECT transaction_id, "offset" FROM `+sealTable+` WHERE event_id = $1 LIMIT 1`, id).
		Scan(&at.TransactionID, &at.Offset)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return &Break{Position: l.Position, EventID: id, Kind: "altered",
			Detail: fmt.Sprintf("the seal has event %s here; the stream's event id was changed", s.EventID)}, nil
	case err != nil:
		return nil, fmt.Errorf("verify: find event %s in the seal: %w", id, err)
	}
	return &Break{Position: l.Position, EventID: id, Kind: "reordered",
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
				a.Count, v.last.Position, v.verified)}, nil
	}
	return nil, nil
}

func (v *verifier) head() SealHead {
	return SealHead{Position: v.last.Position, EventID: v.last.id(), Hash: v.last.Hash, Count: v.last.Seq}
}

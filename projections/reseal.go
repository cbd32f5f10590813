package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
)

// ResealRecorder records a re-seal as an audit.reseal event by ctx's caller
// (app.RecordResealHandler).
type ResealRecorder interface {
	Handle(ctx context.Context, cmd app.RecordReseal) error
}

// SealRefusedError is returned by Reseal when the existing chain does not
// verify: re-sealing would launder the break.
type SealRefusedError struct{ Break *Break }

func (e *SealRefusedError) Error() string {
	return "refusing to re-seal: the existing chain does not verify: " + e.Break.String()
}

// Reseal rebuilds audit_seal by replay, like Rebuild does other
// projections, but only when the existing chain verifies, and it records
// itself through rec — with the head it replaces and the operator (OS user
// and host) who ran it — before re-sealing, so the new chain covers its own
// creation (or the live runner links it right after, had another
// transaction still hidden it at the swap).
func Reseal(ctx context.Context, pool *pgxpool.Pool, events EventReader, rec ResealRecorder, operator string, opts RebuildOptions) (eventstore.Position, error) {
	rep, err := Verify(ctx, pool, nil)
	if err != nil {
		return eventstore.Position{}, err
	}
	if rep.Break != nil {
		return eventstore.Position{}, &SealRefusedError{Break: rep.Break}
	}
	head, err := json.Marshal(rep.Head)
	if err != nil {
		return eventstore.Position{}, err
	}
	if err := rec.Handle(ctx, app.RecordReseal{PreviousHead: head, Operator: operator}); err != nil {
		return eventstore.Position{}, fmt.Errorf("record the re-seal: %w", err)
	}
	return rebuild(ctx, pool, events, AuditSeal{}, opts)
}

// copySeal is a re-seal's copy phase, streamed: each row read (gap-free, in
// its stored form) is hashed as it arrives and encoded straight into the
// binary COPY of its seal row — no Event, no copy of the payload or the
// metadata, no allocation per event — and a batch goes into the shadow,
// committed with the rebuild's position, while the next one is read and
// hashed. A batch whose COPY fails on its data (which Verify, having
// passed, makes unexpected) is applied once more through AuditSeal.Apply,
// whose bisection quarantines the culprit as the live runner would, and
// streaming resumes after it.
func (r *rebuilder) copySeal(ctx context.Context) error {
	for {
		err := r.streamSeal(ctx)
		if !errors.Is(err, errSealPoison) {
			return err
		}
		evs, err := readBatch(ctx, r.events, r.p, r.pool, r.pos, r.opts.BatchSize)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		if err := r.copyBatch(ctx, evs); err != nil {
			return err
		}
	}
}

// errSealPoison stops streamSeal at a batch whose COPY failed on its data.
var errSealPoison = errors.New("a seal batch failed on its data")

// sealBatch is a batch of seal rows in COPY's binary format.
type sealBatch struct {
	copy []byte
	n    int
	last eventstore.Position
}

// pgcopyHeader starts a binary COPY: signature, flags, header extension
// length.
const pgcopyHeader = "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// streamSeal streams from the shadow's position until a read comes back
// short.
func (r *rebuilder) streamSeal(ctx context.Context) error {
	tip, err := readSealTip(ctx, r.pool, shadowTables)
	if err != nil {
		return err
	}
	c, after, size := newChain(tip), r.pos, r.opts.BatchSize
	g, gctx := errgroup.WithContext(ctx)
	// Three batches circulate — one being copied, one waiting, one being
	// filled — so the reads allocate nothing once under way.
	free := make(chan *sealBatch, 3)
	for range cap(free) {
		free <- &sealBatch{}
	}
	batches := make(chan *sealBatch, 1)
	g.Go(func() error {
		defer close(batches)
		for {
			var b *sealBatch
			select {
			case b = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			b.copy, b.n = append(b.copy[:0], pgcopyHeader...), 0
			_, err := eventstore.EachAfter(gctx, r.pool, after, size, func(e *eventstore.RawEvent) error {
				h := c.addRaw(e)
				b.copy = appendSealTuple(b.copy, e.Position, e.ID, c.count, h)
				b.n, b.last = b.n+1, e.Position
				return nil
			})
			if err != nil {
				return err
			}
			if b.n > 0 {
				after = b.last
				b.copy = binary.BigEndian.AppendUint16(b.copy, 0xffff) // the trailer: -1 fields
				select {
				case batches <- b:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if b.n < size {
				return nil
			}
		}
	})
	g.Go(func() error {
		for b := range batches {
			if err := r.copySealBatch(gctx, b); err != nil {
				return err
			}
			free <- b
			r.report("copy")
		}
		return nil
	})
	return g.Wait()
}

// appendSealTuple appends a seal row as a binary COPY tuple: five fields,
// each length-prefixed, in sealColumns' order (xid8 and bigint as 8 bytes
// big-endian, text and bytea as they are).
func appendSealTuple(b []byte, pos eventstore.Position, id []byte, seq int64, h Hash) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(sealColumns)))
	b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(b, 8), pos.TransactionID)
	b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(b, 8), uint64(pos.Offset))
	b = appendBytes(b, id)
	b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(b, 8), uint64(seq))
	return appendBytes(b, h[:])
}

// sealShadowCopySQL is the binary COPY into the seal's shadow, its columns
// in sealColumns' order (appendSealTuple's).
var sealShadowCopySQL = func() string {
	cols := make([]string, len(sealColumns))
	for i, c := range sealColumns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return `COPY ` + shadowTables.Of(sealTable).Sanitize() + ` (` + strings.Join(cols, ", ") + `) FROM STDIN (FORMAT binary)`
}()

// copySealBatch COPYs b into the shadow and moves the rebuild's position in
// the same transaction (commitBatch).
func (r *rebuilder) copySealBatch(ctx context.Context, b *sealBatch) error {
	return r.commitBatch(ctx, b.last, b.n, func(tx pgx.Tx) error {
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(b.copy), sealShadowCopySQL); err != nil {
			if isPoison(ctx, err) {
				return fmt.Errorf("%w: %w", errSealPoison, err)
			}
			return err
		}
		return nil
	})
}

package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// testGapFreeOrder: transaction A appends first (lower xid, lower offset) and
// stays open while B appends and commits. A reader must not see B until A
// ends; then it gets A and B, each once, in (transaction_id, offset) order.
func testGapFreeOrder(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	txA := begin(ctx, t, s)
	rA, err := s.AppendTx(ctx, txA, newStream("user"), eventstore.NoStream, testMD, ev("user.created", `{"tx":"A"}`))
	if err != nil {
		t.Fatal(err)
	}
	rB := appendInTx(ctx, t, s, newStream("user"), ev("user.created", `{"tx":"B"}`))

	got, err := s.Read(ctx, eventstore.Start, 100, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("reader saw %v while the older transaction A is still open; B's event must stay hidden", ids(got))
	}
	if head, err := s.Head(ctx); err != nil || head != eventstore.Start {
		t.Fatalf("Head = %s, %v while A is open; want %s", head, err, eventstore.Start)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	all := readAllN(ctx, t, s, eventstore.Filter{}, 2)
	equalIDs(t, "after A commits", ids(all), []string{rA.IDs[0], rB.IDs[0]})
	checkStoreOrder(t, all)
	if all[0].TransactionID >= all[1].TransactionID || all[0].Offset >= all[1].Offset {
		t.Fatalf("A at %s should precede B at %s in both xid and offset", all[0].Position, all[1].Position)
	}
	rest, err := s.Read(ctx, all[0].Position, 100, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "read after A's position", ids(rest), []string{rB.IDs[0]})
	if rest, err = s.Read(ctx, all[1].Position, 100, eventstore.Filter{}); err != nil || len(rest) != 0 {
		t.Fatalf("read after the last position: %v, %v", ids(rest), err)
	}
}

// testGapFreeXidBeforeOffset: A gets its transaction id first (it writes a
// state row) but appends after B, so A's offset is higher than B's. The store
// order is by transaction id first: A, then B. A reader that had
// checkpointed B's offset alone would have skipped A.
func testGapFreeXidBeforeOffset(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	table := stateTable(ctx, t, s)
	txA := begin(ctx, t, s)
	if _, err := txA.Exec(ctx, `INSERT INTO `+table+` VALUES ('a', 'takes an xid')`); err != nil {
		t.Fatal(err)
	}
	rB := appendInTx(ctx, t, s, newStream("user"), ev("user.created", `{"tx":"B"}`))
	if got, err := s.Read(ctx, eventstore.Start, 100, eventstore.Filter{}); err != nil || len(got) != 0 {
		t.Fatalf("reader saw %v (err %v) while A, holding a lower xid, is open", ids(got), err)
	}
	rA, err := s.AppendTx(ctx, txA, newStream("user"), eventstore.NoStream, testMD, ev("user.created", `{"tx":"A"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	all := readAllN(ctx, t, s, eventstore.Filter{}, 2)
	equalIDs(t, "store order", ids(all), []string{rA.IDs[0], rB.IDs[0]})
	checkStoreOrder(t, all)
	if all[0].Offset <= all[1].Offset {
		t.Fatalf("expected A (%s) to hold the higher offset than B (%s)", all[0].Position, all[1].Position)
	}
}

func appendInTx(ctx context.Context, t *testing.T, s *eventstore.Store, stream string, events ...eventstore.NewEvent) eventstore.AppendResult {
	t.Helper()
	var r eventstore.AppendResult
	err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		var err error
		r, err = s.AppendTx(ctx, tx, stream, eventstore.NoStream, testMD, events...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// gapReader polls Read from its last position and records what it got.
type gapReader struct {
	s    *eventstore.Store
	pos  eventstore.Position
	seq  []string
	seen map[string]bool
}

func (r *gapReader) poll(ctx context.Context) error {
	const page = 64
	for {
		events, err := r.s.Read(ctx, r.pos, page, eventstore.Filter{})
		if err != nil {
			return err
		}
		for _, e := range events {
			if r.seen[e.ID] {
				return fmt.Errorf("event %s at %s read twice", e.ID, e.Position)
			}
			if !r.pos.Less(e.Position) {
				return fmt.Errorf("event %s at %s does not come after the checkpoint %s", e.ID, e.Position, r.pos)
			}
			r.seen[e.ID] = true
			r.seq = append(r.seq, e.ID)
			r.pos = e.Position
		}
		if len(events) < page {
			return nil
		}
	}
}

// ledger records what writers committed and aborted.
type ledger struct {
	mu        sync.Mutex
	committed map[string]bool
	aborted   map[string]bool
}

func (l *ledger) record(ids []string, committed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if committed {
			l.committed[id] = true
		} else {
			l.aborted[id] = true
		}
	}
}

// scriptTx is one transaction of a scripted interleaving.
type scriptTx struct {
	tx       pgx.Tx
	touch    bool // write a state row before the append (takes the xid early)
	commit   bool
	ops      []string
	next     int
	writeSeq int // when the transaction got its xid (0 = not yet)
	ids      []string
	ended    bool
}

// testGapFreeStress runs 1,000 random interleavings of two transactions with
// a reader polling between steps, then several writers and a reader truly
// concurrently; some transactions roll back. The reader must end up with
// exactly the committed events, each once, in the order a full read from
// Start returns them, and never an aborted one.
func testGapFreeStress(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	table := stateTable(ctx, t, s)
	led := &ledger{committed: map[string]bool{}, aborted: map[string]bool{}}
	reader := &gapReader{s: s, seen: map[string]bool{}}
	seed := uint64(time.Now().UnixNano())
	t.Logf("interleaving seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	// Phase 1: scripted interleavings, checked step by step.
	const iterations = 1000
	seq := 0
	for it := range iterations {
		txs := [2]*scriptTx{}
		for i := range txs {
			st := &scriptTx{touch: rng.IntN(3) == 0, commit: rng.IntN(5) != 0}
			st.ops = []string{"begin"}
			if st.touch {
				st.ops = append(st.ops, "touch")
			}
			st.ops = append(st.ops, "append", "end")
			txs[i] = st
		}
		for txs[0].next < len(txs[0].ops) || txs[1].next < len(txs[1].ops) {
			i := rng.IntN(2)
			if txs[i].next == len(txs[i].ops) {
				i = 1 - i
			}
			st := txs[i]
			op := st.ops[st.next]
			st.next++
			var err error
			switch op {
			case "begin":
				st.tx = begin(ctx, t, s)
			case "touch":
				_, err = st.tx.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'touch')`, fmt.Sprintf("%d/%d", it, i))
				seq++
				st.writeSeq = seq
			case "append":
				var r eventstore.AppendResult
				r, err = s.AppendTx(ctx, st.tx, newStream("user"), eventstore.NoStream, testMD, evs(1+rng.IntN(2), "user.created")...)
				st.ids = r.IDs
				if st.writeSeq == 0 {
					seq++
					st.writeSeq = seq
				}
			case "end":
				if st.commit {
					err = st.tx.Commit(ctx)
				} else {
					err = st.tx.Rollback(ctx)
				}
				st.ended = true
				led.record(st.ids, st.commit)
			}
			if err != nil {
				t.Fatalf("iteration %d: tx %d %s: %v", it, i, op, err)
			}
			if rng.IntN(2) == 0 {
				if err := reader.poll(ctx); err != nil {
					t.Fatalf("iteration %d: %v", it, err)
				}
				// While a transaction that got its xid earlier is open,
				// nothing committed by a younger one may be visible.
				for a := range txs {
					older, younger := txs[a], txs[1-a]
					if older.writeSeq == 0 || older.ended || younger.writeSeq < older.writeSeq || !younger.ended || !younger.commit {
						continue
					}
					for _, id := range younger.ids {
						if reader.seen[id] {
							t.Fatalf("iteration %d: reader saw %s committed by a younger transaction while an older one is open (it would skip the older one's events)", it, id)
						}
					}
				}
			}
		}
	}

	// Phase 2: concurrent writers (Any on shared streams, so they also wait on
	// each other's uncommitted versions) and a concurrently polling reader.
	const writers, perWriter = 4, 150
	streams := make([]string, 6)
	for i := range streams {
		streams[i] = newStream("execution")
	}
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		for {
			if err := reader.poll(ctx); err != nil {
				readerDone <- err
				return
			}
			select {
			case <-stop:
				readerDone <- nil
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	var wg sync.WaitGroup
	werrs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)+2))
			pause := func() {
				if d := rng.IntN(400); d > 200 {
					time.Sleep(time.Duration(d-200) * time.Microsecond)
				}
			}
			for i := range perWriter {
				if err := stressTx(ctx, s, table, led, rng, pause, streams[rng.IntN(len(streams))], fmt.Sprintf("w%d/%d", w, i)); err != nil {
					werrs <- fmt.Errorf("writer %d tx %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	close(werrs)
	for err := range werrs {
		t.Fatal(err)
	}

	// Drain: everything committed becomes visible once no older transaction
	// is open.
	deadline := time.Now().Add(visibilityTimeout)
	for {
		if err := reader.poll(ctx); err != nil {
			t.Fatal(err)
		}
		if len(reader.seq) >= len(led.committed) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for id := range led.aborted {
		if reader.seen[id] {
			t.Fatalf("reader saw %s from a rolled-back transaction", id)
		}
	}
	for id := range led.committed {
		if !reader.seen[id] {
			t.Fatalf("reader never saw committed event %s (skipped); it saw %d of %d", id, len(reader.seq), len(led.committed))
		}
	}
	if len(reader.seq) != len(led.committed) {
		t.Fatalf("reader saw %d events, %d were committed", len(reader.seq), len(led.committed))
	}
	final := readAll(ctx, t, s, eventstore.Filter{})
	checkStoreOrder(t, final)
	equalIDs(t, "polling reader vs a full read from Start", reader.seq, ids(final))
	t.Logf("%d transactions, %d committed events, %d aborted events", 2*iterations+writers*perWriter, len(led.committed), len(led.aborted))
}

func stressTx(ctx context.Context, s *eventstore.Store, table string, led *ledger, rng *rand.Rand, pause func(), stream, key string) error {
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if rng.IntN(3) == 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'touch')`, key); err != nil {
			return err
		}
		pause()
	}
	r, err := s.AppendTx(ctx, tx, stream, eventstore.Any, testMD, evs(1+rng.IntN(3), "execution.prepare")...)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	pause()
	if rng.IntN(7) == 0 {
		if err := tx.Rollback(ctx); err != nil {
			return err
		}
		led.record(r.IDs, false)
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("commit: %w", err)
	}
	led.record(r.IDs, true)
	return nil
}

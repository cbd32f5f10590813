package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

func testAppendExpectedVersion(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	stream := newStream("user")

	r := mustAppend(t, s, stream, eventstore.NoStream, ev("user.created", `{}`), ev("user.role.changed", `{}`))
	if r.Version != 2 {
		t.Fatalf("NoStream append of 2 events: version %d, want 2", r.Version)
	}
	for _, id := range r.IDs {
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("generated id %q is not a uuid", id)
		}
	}
	if r.IDs[0] == r.IDs[1] {
		t.Fatal("two events got the same id")
	}
	want := append([]string(nil), r.IDs...)

	for _, tc := range []struct {
		what     string
		expected eventstore.ExpectedVersion
	}{
		{"NoStream on an existing stream", eventstore.NoStream},
		{"stale expected version 1", eventstore.Exact(1)},
		{"too-high expected version 3", eventstore.Exact(3)},
		{"too-high expected version 100", eventstore.Exact(100)},
	} {
		_, err := s.Append(ctx, stream, tc.expected, testMD, ev("user.created", `{}`))
		wantConflict(t, tc.what, err)
	}

	r = mustAppend(t, s, stream, eventstore.Exact(2), ev("auth.logout", `{}`))
	if r.Version != 3 {
		t.Fatalf("Exact(2): version %d, want 3", r.Version)
	}
	want = append(want, r.IDs...)
	_, err := s.Append(ctx, stream, eventstore.Exact(2), testMD, ev("auth.logout", `{}`))
	wantConflict(t, "Exact(2) once more (stale)", err)

	r = mustAppend(t, s, stream, eventstore.Any, ev("auth.logout", `{}`), ev("auth.logout", `{}`))
	if r.Version != 5 {
		t.Fatalf("Any: version %d, want 5", r.Version)
	}
	want = append(want, r.IDs...)

	// Any and NoStream on a new stream start at 1; an exact version on a
	// stream that does not exist is a conflict and writes nothing.
	other := newStream("user")
	_, err = s.Append(ctx, other, eventstore.Exact(1), testMD, ev("user.created", `{}`))
	wantConflict(t, "Exact(1) on a missing stream", err)
	if got, err := s.ReadStream(ctx, nil, other, 0); err != nil || len(got) != 0 {
		t.Fatalf("failed append left %d events (err %v)", len(got), err)
	}
	if r := mustAppend(t, s, other, eventstore.Any, ev("user.created", `{}`)); r.Version != 1 {
		t.Fatalf("Any on a new stream: version %d, want 1", r.Version)
	}

	got, err := s.ReadStream(ctx, nil, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, got)
	equalIDs(t, "stream after appends and conflicts", ids(got), want)

	all := readAllN(ctx, t, s, eventstore.Filter{}, 6)
	if len(all) != 6 {
		t.Fatalf("store holds %d events, want 6 (a conflict wrote something?)", len(all))
	}
	checkStoreOrder(t, all)
}

func testAppendValidation(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	stream := newStream("user")
	good := ev("user.created", `{"a":1}`)
	for _, tc := range []struct {
		what     string
		stream   string
		expected eventstore.ExpectedVersion
		events   []eventstore.NewEvent
	}{
		{"no events", stream, eventstore.Any, nil},
		{"empty stream id", "", eventstore.Any, []eventstore.NewEvent{good}},
		{"expected version below Any", stream, eventstore.ExpectedVersion(-2), []eventstore.NewEvent{good}},
		{"empty type", stream, eventstore.Any, []eventstore.NewEvent{{SchemaVersion: 1, Data: json.RawMessage(`{}`)}}},
		{"schema version 0", stream, eventstore.Any, []eventstore.NewEvent{{Type: "user.created", Data: json.RawMessage(`{}`)}}},
		{"invalid JSON", stream, eventstore.Any, []eventstore.NewEvent{good, {Type: "user.created", SchemaVersion: 1, Data: json.RawMessage(`{"a":`)}}},
		{"no data", stream, eventstore.Any, []eventstore.NewEvent{{Type: "user.created", SchemaVersion: 1}}},
	} {
		_, err := s.Append(ctx, tc.stream, tc.expected, testMD, tc.events...)
		if err == nil {
			t.Fatalf("%s: append succeeded", tc.what)
		}
		if errors.Is(err, eventstore.ErrConcurrency) {
			t.Fatalf("%s: got ErrConcurrency for invalid input", tc.what)
		}
	}
	if got := readAll(ctx, t, s, eventstore.Filter{}); len(got) != 0 {
		t.Fatalf("invalid appends wrote %d events", len(got))
	}
	// A caller-chosen id is kept.
	id := uuid.NewString()
	r := mustAppend(t, s, stream, eventstore.NoStream, eventstore.NewEvent{ID: id, Type: "user.created", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
	if r.IDs[0] != id {
		t.Fatalf("id %s, want the caller's %s", r.IDs[0], id)
	}
}

// testAppendBatchSizes appends batches of 1 to 20 events (the store may use
// different statements for small and large batches): versions, ids and store
// order agree, and conflicts are detected at every size.
func testAppendBatchSizes(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	total := 0
	for n := 1; n <= 20; n++ {
		stream := newStream("execution")
		r1 := mustAppend(t, s, stream, eventstore.NoStream, evs(n, "execution.prepare")...)
		r2 := mustAppend(t, s, stream, eventstore.Exact(int64(n)), evs(n, "execution.prepare")...)
		if r1.Version != int64(n) || r2.Version != int64(2*n) {
			t.Fatalf("batch of %d: versions %d, %d", n, r1.Version, r2.Version)
		}
		for _, expected := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Exact(int64(n)), eventstore.Exact(int64(3 * n))} {
			_, err := s.Append(ctx, stream, expected, testMD, evs(n, "execution.prepare")...)
			wantConflict(t, fmt.Sprintf("batch of %d at %d", n, expected), err)
		}
		total += 2 * n
		want := append(append([]string(nil), r1.IDs...), r2.IDs...)
		got, err := s.ReadStream(ctx, nil, stream, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkContiguous(t, got)
		equalIDs(t, fmt.Sprintf("batch of %d by version", n), ids(got), want)
		// Store order within the stream is version order.
		byPos := readAllN(ctx, t, s, eventstore.Filter{Stream: stream}, 2*n)
		checkContiguous(t, byPos)
		checkStoreOrder(t, byPos)
	}
	if all := readAllN(ctx, t, s, eventstore.Filter{}, total); len(all) != total {
		t.Fatalf("store holds %d events, want %d", len(all), total)
	}
}

// testConcurrentExact races 50 writers at the same expected version, round
// after round: exactly one wins each round, the others get ErrConcurrency,
// and the stream stays contiguous with exactly the winners' events.
func testConcurrentExact(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	const writers, rounds = 50, 8
	stream := newStream("execution")
	var version int64
	var want []string
	for round := range rounds {
		type result struct {
			res      eventstore.AppendResult
			err      error
			n        int
			expected int64
		}
		results := make([]result, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := 1 + w%3
				expected := version
				switch {
				case w%10 == 8 && version > 0:
					expected = version - 1 // stale
				case w%10 == 9:
					// Too high, even after this round's winner (at most 3
					// events) — version+1 may legitimately win once the
					// winner has committed.
					expected = version + 10
				}
				<-start
				r, err := s.Append(ctx, stream, eventstore.Exact(expected), testMD, evs(n, "execution.prepare")...)
				results[w] = result{r, err, n, expected}
			}()
		}
		close(start)
		wg.Wait()
		winners, next := 0, version
		for w, r := range results {
			switch {
			case r.err == nil:
				winners++
				if r.expected != version {
					t.Fatalf("round %d: writer %d expecting %d won at stream version %d", round, w, r.expected, version)
				}
				if r.res.Version != version+int64(r.n) {
					t.Fatalf("round %d: winner appended %d events at %d, got version %d", round, r.n, version, r.res.Version)
				}
				want = append(want, r.res.IDs...)
				next = r.res.Version
			case errors.Is(r.err, eventstore.ErrConcurrency):
			default:
				t.Fatalf("round %d: writer %d: %v (want nil or ErrConcurrency)", round, w, r.err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d writers won at version %d, want exactly 1", round, winners, version)
		}
		version = next
	}
	got, err := s.ReadStream(ctx, nil, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, got)
	equalIDs(t, "stream after racing rounds", ids(got), want)
	all := readAllN(ctx, t, s, eventstore.Filter{}, len(want))
	checkStoreOrder(t, all)
	if len(all) != len(want) {
		t.Fatalf("store holds %d events, want %d", len(all), len(want))
	}
}

// checkAnyResults checks that every append's events sit as one contiguous
// block at the versions the append reported, and nothing else is there.
func checkAnyResults(t *testing.T, got []eventstore.Event, results [][]eventstore.AppendResult) {
	t.Helper()
	checkContiguous(t, got)
	total := 0
	for _, rs := range results {
		for _, r := range rs {
			for i, id := range r.IDs {
				v := r.Version - int64(len(r.IDs)) + int64(i) + 1
				if v < 1 || v > int64(len(got)) || got[v-1].ID != id {
					t.Fatalf("event %s of an append ending at version %d is not at version %d", id, r.Version, v)
				}
				total++
			}
		}
	}
	if total != len(got) {
		t.Fatalf("stream holds %d events, appends reported %d", len(got), total)
	}
}

// testConcurrentAny: 50 writers append with Any to one stream at once; every
// append succeeds and the stream stays contiguous.
func testConcurrentAny(t *testing.T, s *eventstore.Store) {
	raceAny(t, s, 50, 4, func(ctx context.Context, stream string, events []eventstore.NewEvent) (eventstore.AppendResult, error) {
		return s.Append(ctx, stream, eventstore.Any, testMD, events...)
	})
}

// testConcurrentAnyInTx: Any inside caller transactions, racing; all commit.
func testConcurrentAnyInTx(t *testing.T, s *eventstore.Store) {
	raceAny(t, s, 16, 3, func(ctx context.Context, stream string, events []eventstore.NewEvent) (r eventstore.AppendResult, err error) {
		err = pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
			r, err = s.AppendTx(ctx, tx, stream, eventstore.Any, testMD, events...)
			return err
		})
		return r, err
	})
}

// raceAny starts writers that each make perWriter appends of one or two
// events to one stream at once, through appendAny, and checks that every one
// succeeded and the stream holds exactly their events, contiguously.
func raceAny(t *testing.T, s *eventstore.Store, writers, perWriter int,
	appendAny func(ctx context.Context, stream string, events []eventstore.NewEvent) (eventstore.AppendResult, error),
) {
	ctx := testCtx(t)
	stream := newStream("keyring")
	results := make([][]eventstore.AppendResult, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perWriter {
				r, err := appendAny(ctx, stream, evs(1+(w+i)%2, "security.key_rotation.reencrypt"))
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					continue
				}
				results[w] = append(results[w], r)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	got, err := s.ReadStream(ctx, nil, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkAnyResults(t, got, results)
}

// stateTable creates a scratch table standing for a command's state rows.
func stateTable(ctx context.Context, t *testing.T, s *eventstore.Store) string {
	t.Helper()
	name := "eventstoretest_state_" + fmt.Sprint(time.Now().UnixNano())
	if _, err := s.Pool().Exec(ctx, `CREATE TABLE `+name+` (id text PRIMARY KEY, note text)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = s.Pool().Exec(context.Background(), `DROP TABLE IF EXISTS `+name)
	})
	return name
}

func stateRowExists(ctx context.Context, t *testing.T, s *eventstore.Store, table, id string) bool {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func streamLen(ctx context.Context, t *testing.T, s *eventstore.Store, stream string) int {
	t.Helper()
	got, err := s.ReadStream(ctx, nil, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, got)
	return len(got)
}

func testAtomicCommit(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	table := stateTable(ctx, t, s)
	stream := newStream("user")
	tx := begin(ctx, t, s)
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` VALUES ('secret-1', 'ciphertext row')`); err != nil {
		t.Fatal(err)
	}
	r, err := s.AppendTx(ctx, tx, stream, eventstore.NoStream, testMD, ev("secrets.exchange.configured", `{"exchange":"BINANCE"}`))
	if err != nil || r.Version != 1 {
		t.Fatalf("AppendTx: %+v, %v", r, err)
	}
	// In the transaction the event is there; outside it is not yet.
	in, err := s.ReadStream(ctx, tx, stream, 0)
	if err != nil || len(in) != 1 {
		t.Fatalf("ReadStream in the tx: %d events, %v", len(in), err)
	}
	if n := streamLen(ctx, t, s, stream); n != 0 || stateRowExists(ctx, t, s, table, "secret-1") {
		t.Fatal("uncommitted state or event visible outside the transaction")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if streamLen(ctx, t, s, stream) != 1 || !stateRowExists(ctx, t, s, table, "secret-1") {
		t.Fatal("after commit the event and the state row must both be there")
	}
	all := readAllN(ctx, t, s, eventstore.Filter{Stream: stream}, 1)
	if all[0].ID != r.IDs[0] {
		t.Fatalf("read %s, appended %s", all[0].ID, r.IDs[0])
	}
}

func testAtomicRollback(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	table := stateTable(ctx, t, s)
	stream := newStream("user")
	tx := begin(ctx, t, s)
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` VALUES ('secret-1', 'ciphertext row')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendTx(ctx, tx, stream, eventstore.NoStream, testMD, ev("secrets.exchange.configured", `{}`), ev("secrets.exchange.deleted", `{}`)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if streamLen(ctx, t, s, stream) != 0 || stateRowExists(ctx, t, s, table, "secret-1") {
		t.Fatal("after rollback neither the events nor the state row may remain")
	}
	// The stream is still new: NoStream succeeds.
	if r := mustAppend(t, s, stream, eventstore.NoStream, ev("secrets.exchange.configured", `{}`)); r.Version != 1 {
		t.Fatalf("version %d after a rolled back append, want 1", r.Version)
	}
	if all := readAllN(ctx, t, s, eventstore.Filter{}, 1); len(all) != 1 {
		t.Fatalf("%d events, want 1: a rolled-back event is visible", len(all))
	}
}

// testAtomicConflict: a version conflict inside the command's transaction
// fails the transaction, so the state row written before it cannot commit.
func testAtomicConflict(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	table := stateTable(ctx, t, s)
	stream := newStream("user")
	mustAppend(t, s, stream, eventstore.NoStream, ev("user.created", `{}`))
	for i, expected := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Exact(2), eventstore.Exact(7)} {
		row := fmt.Sprintf("row-%d", i)
		tx := begin(ctx, t, s)
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'state')`, row); err != nil {
			t.Fatal(err)
		}
		_, err := s.AppendTx(ctx, tx, stream, expected, testMD, ev("user.role.changed", `{}`))
		wantConflict(t, fmt.Sprintf("AppendTx at %d", expected), err)
		// Even a caller that ignores the error cannot commit the state row.
		if err := tx.Commit(ctx); err == nil {
			t.Fatalf("commit after a conflict at %d succeeded", expected)
		}
		_ = tx.Rollback(ctx)
		if stateRowExists(ctx, t, s, table, row) {
			t.Fatalf("state row %s committed despite the conflict", row)
		}
	}
	if n := streamLen(ctx, t, s, stream); n != 1 {
		t.Fatalf("stream has %d events, want 1", n)
	}
}

// waitBlocked waits until some backend of this database waits on a lock.
func waitBlocked(ctx context.Context, t *testing.T, s *eventstore.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("the second transaction never blocked on the first one's append")
}

// testAtomicRace: two command transactions append to the same stream; the
// second blocks on the first one's uncommitted event. When the first commits
// the second gets ErrConcurrency (its state rolls back) — or, with Any, lands
// after it; when the first rolls back the second wins.
func testAtomicRace(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	table := stateTable(ctx, t, s)
	for _, tc := range []struct {
		name          string
		expected      eventstore.ExpectedVersion
		firstCommits  bool
		secondWins    bool
		secondVersion int64
	}{
		{"exact, first commits", eventstore.NoStream, true, false, 0},
		{"exact, first rolls back", eventstore.NoStream, false, true, 1},
		{"any, first commits", eventstore.Any, true, true, 2},
		{"any, first rolls back", eventstore.Any, false, true, 1},
	} {
		stream := newStream("user")
		row1, row2 := stream+"/1", stream+"/2"
		tx1 := begin(ctx, t, s)
		if _, err := tx1.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'first')`, row1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendTx(ctx, tx1, stream, tc.expected, testMD, ev("user.created", `{}`)); err != nil {
			t.Fatalf("%s: first append: %v", tc.name, err)
		}
		type outcome struct {
			r   eventstore.AppendResult
			err error
		}
		done := make(chan outcome, 1)
		tx2 := begin(ctx, t, s)
		if _, err := tx2.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'second')`, row2); err != nil {
			t.Fatal(err)
		}
		go func() {
			r, err := s.AppendTx(ctx, tx2, stream, tc.expected, testMD, ev("user.created", `{}`))
			done <- outcome{r, err}
		}()
		waitBlocked(ctx, t, s)
		var err error
		if tc.firstCommits {
			err = tx1.Commit(ctx)
		} else {
			err = tx1.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		o := <-done
		if tc.secondWins {
			if o.err != nil || o.r.Version != tc.secondVersion {
				t.Fatalf("%s: second append: %+v, %v; want version %d", tc.name, o.r, o.err, tc.secondVersion)
			}
			if err := tx2.Commit(ctx); err != nil {
				t.Fatalf("%s: commit second: %v", tc.name, err)
			}
		} else {
			wantConflict(t, tc.name+": second append", o.err)
			if err := tx2.Commit(ctx); err == nil {
				t.Fatalf("%s: the losing transaction committed", tc.name)
			}
		}
		if got := stateRowExists(ctx, t, s, table, row1); got != tc.firstCommits {
			t.Fatalf("%s: first state row exists=%v", tc.name, got)
		}
		if got := stateRowExists(ctx, t, s, table, row2); got != tc.secondWins {
			t.Fatalf("%s: second state row exists=%v, want %v", tc.name, got, tc.secondWins)
		}
		want := 0
		if tc.firstCommits {
			want++
		}
		if tc.secondWins {
			want++
		}
		if n := streamLen(ctx, t, s, stream); n != want {
			t.Fatalf("%s: stream has %d events, want %d", tc.name, n, want)
		}
	}
}

// Package eventstoretest is the event store's conformance suite. It proves,
// against a real PostgreSQL server, the properties DESIGN.md section 2 asks of
// the store: optimistic concurrency without duplicates or gaps, atomic appends
// with other state, gap-free ordered reads under concurrent commits,
// catch-up subscriptions, metadata and upcasting, and interoperability with
// watermill-sql publishers and subscribers on the same table.
//
// Use it from a _test.go file:
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Run(t, func(t *testing.T) *eventstore.Store { ... })
//	}
//
// newStore must return a store over a freshly migrated, empty database that
// stays usable until t ends (register cleanups with t.Cleanup; closing the
// pool should not wait forever on a connection a failed test leaked). Its pool
// should allow at least 16 connections so that the concurrency tests really
// run concurrently (4 is the minimum the suite needs). Some tests build
// further stores over the same pool with eventstore.New(store.Pool(), opts...)
// to set a clock or an upcaster.
//
// The server's snapshot xmin is cluster-wide: a long open write transaction
// in any database of the server delays (never breaks) what readers see, so
// every "eventually visible" check waits up to visibilityTimeout.
package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// visibilityTimeout bounds how long a test waits for committed events to
// become readable (they become so as soon as no older transaction is open on
// the server).
const visibilityTimeout = 90 * time.Second

// Run runs the whole suite; every subtest gets its own store from newStore.
func Run(t *testing.T, newStore func(t *testing.T) *eventstore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, *eventstore.Store)
	}{
		{"AppendExpectedVersion", testAppendExpectedVersion},
		{"AppendValidation", testAppendValidation},
		{"AppendBatchSizes", testAppendBatchSizes},
		{"ConcurrentExactVersion", testConcurrentExact},
		{"ConcurrentAny", testConcurrentAny},
		{"ConcurrentAnyInTx", testConcurrentAnyInTx},
		{"AtomicCommit", testAtomicCommit},
		{"AtomicRollback", testAtomicRollback},
		{"AtomicConflictRollsBackState", testAtomicConflict},
		{"AtomicRaceBetweenTransactions", testAtomicRace},
		{"GapFreeOrder", testGapFreeOrder},
		{"GapFreeXidBeforeOffset", testGapFreeXidBeforeOffset},
		{"GapFreeStress", testGapFreeStress},
		{"SubscribeCatchUpAndLive", testSubscribe},
		{"SubscribeFromCheckpointAndFilter", testSubscribeCheckpoint},
		{"SubscribeHandlerError", testSubscribeHandlerError},
		{"MetadataRoundTrip", testMetadataRoundTrip},
		{"EventTypeNames", testEventTypeNames},
		{"Upcasting", testUpcasting},
		{"ReadFilters", testReadFilters},
		{"ReadStream", testReadStream},
		{"Head", testHead},
		{"PositionParseString", testPosition},
		{"WatermillPublisher", testWatermillPublisher},
		{"WatermillSubscriber", testWatermillSubscriber},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// testCtx is the context of one test: cancelled when the test ends and at
// the latest after three minutes, so a hang fails the test instead of the
// run.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// begin starts a transaction that is rolled back when the test ends if it is
// still open, so a failing test never leaves a transaction holding back the
// server's snapshot xmin (which would stall every reader on the server).
func begin(ctx context.Context, t *testing.T, s *eventstore.Store) pgx.Tx {
	t.Helper()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(ctx) // ErrTxClosed when the test ended it
	})
	return tx
}

func newStream(kind string) string { return kind + "-" + uuid.NewString() }

func ev(typ string, data string) eventstore.NewEvent {
	return eventstore.NewEvent{Type: typ, SchemaVersion: 1, Data: json.RawMessage(data)}
}

func evs(n int, typ string) []eventstore.NewEvent {
	out := make([]eventstore.NewEvent, n)
	for i := range out {
		out[i] = ev(typ, fmt.Sprintf(`{"i":%d}`, i))
	}
	return out
}

var testMD = eventstore.Metadata{ActorID: "actor-1", ActorEmail: "ops@example.com", CorrelationID: "req-1"}

func mustAppend(t *testing.T, s *eventstore.Store, stream string, expected eventstore.ExpectedVersion, events ...eventstore.NewEvent) eventstore.AppendResult {
	t.Helper()
	r, err := s.Append(testCtx(t), stream, expected, testMD, events...)
	if err != nil {
		t.Fatalf("append %s at %d: %v", stream, expected, err)
	}
	if len(r.IDs) != len(events) {
		t.Fatalf("append %s: %d ids for %d events", stream, len(r.IDs), len(events))
	}
	return r
}

func wantConflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("%s: got %v, want ErrConcurrency", what, err)
	}
}

// readAll reads every event visible now that matches f, from Start, in pages.
func readAll(ctx context.Context, t *testing.T, s *eventstore.Store, f eventstore.Filter) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	pos := eventstore.Start
	for {
		page, err := s.Read(ctx, pos, 500, f)
		if err != nil {
			t.Fatalf("read after %s: %v", pos, err)
		}
		out = append(out, page...)
		if len(page) < 500 {
			return out
		}
		pos = page[len(page)-1].Position
	}
}

// readAllN waits until at least n events matching f are visible and returns
// them all.
func readAllN(ctx context.Context, t *testing.T, s *eventstore.Store, f eventstore.Filter, n int) []eventstore.Event {
	t.Helper()
	deadline := time.Now().Add(visibilityTimeout)
	for {
		all := readAll(ctx, t, s, f)
		if len(all) >= n || time.Now().After(deadline) {
			if len(all) < n {
				t.Fatalf("only %d of %d events became visible within %s (an old open transaction on the server?)", len(all), n, visibilityTimeout)
			}
			return all
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(events []eventstore.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// checkStoreOrder fails unless events are in strictly increasing store order
// with no event twice.
func checkStoreOrder(t *testing.T, events []eventstore.Event) {
	t.Helper()
	seen := make(map[string]bool, len(events))
	for i, e := range events {
		if seen[e.ID] {
			t.Fatalf("event %s (%s) delivered twice", e.ID, e.Position)
		}
		seen[e.ID] = true
		if i > 0 && !events[i-1].Position.Less(e.Position) {
			t.Fatalf("event %d at %s does not come after %s", i, e.Position, events[i-1].Position)
		}
	}
}

// checkContiguous fails unless the stream's events have versions 1..n in
// order.
func checkContiguous(t *testing.T, events []eventstore.Event) {
	t.Helper()
	for i, e := range events {
		if e.StreamVersion != int64(i+1) {
			t.Fatalf("stream %s: event %d has version %d, want %d (gap or duplicate)", e.StreamID, i, e.StreamVersion, i+1)
		}
	}
}

func equalIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %s\n want %s", what, short(got), short(want))
	}
}

func short(ids []string) string {
	if len(ids) > 12 {
		return fmt.Sprintf("%d ids [%s ...]", len(ids), strings.Join(ids[:12], " "))
	}
	return fmt.Sprintf("%d ids %v", len(ids), ids)
}

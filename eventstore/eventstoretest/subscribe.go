package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tradeops/tradeops/eventstore"
)

// collector is a Subscribe handler that records batches.
type collector struct {
	mu      sync.Mutex
	batches []int
	events  []eventstore.Event
	notify  chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, batch []eventstore.Event) error {
	c.mu.Lock()
	c.batches = append(c.batches, len(batch))
	c.events = append(c.events, batch...)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) snapshot() ([]eventstore.Event, []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]eventstore.Event(nil), c.events...), append([]int(nil), c.batches...)
}

// waitN waits until the handler got at least n events.
func (c *collector) waitN(t *testing.T, n int) []eventstore.Event {
	t.Helper()
	timeout := time.After(visibilityTimeout)
	for {
		got, _ := c.snapshot()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.notify:
		case <-timeout:
			t.Fatalf("subscription delivered %d of %d events within %s", len(got), n, visibilityTimeout)
		}
	}
}

// subscribe starts s.Subscribe in a goroutine; stop cancels it and returns
// its error.
func subscribe(ctx context.Context, s *eventstore.Store, from eventstore.Position, opts eventstore.SubscribeOptions, c *collector) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s.Subscribe(ctx, from, opts, c.handle) }()
	return func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Second):
			return errors.New("subscribe did not return within 5s of its context being cancelled")
		}
	}
}

func appendSpread(t *testing.T, s *eventstore.Store, streams []string, n int) {
	t.Helper()
	for i := range n {
		mustAppend(t, s, streams[i%len(streams)], eventstore.Any, ev("execution.prepare", fmt.Sprintf(`{"n":%d}`, i)))
	}
}

func testSubscribe(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	streams := []string{newStream("user"), newStream("execution"), "keyring"}
	appendSpread(t, s, streams, 25)
	all := readAllN(ctx, t, s, eventstore.Filter{}, 25)

	c := newCollector()
	stop := subscribe(ctx, s, eventstore.Start, eventstore.SubscribeOptions{BatchSize: 10}, c)
	got := c.waitN(t, 25)
	equalIDs(t, "catch-up from Start", ids(got), ids(all))
	_, batches := c.snapshot()
	for i, n := range batches {
		if n > 10 || n == 0 {
			t.Fatalf("batch %d has %d events; BatchSize is 10", i, n)
		}
	}
	if len(batches) < 3 || batches[0] != 10 || batches[1] != 10 {
		t.Fatalf("catch-up batches %v, want full batches of 10 first", batches)
	}

	// Live: events appended later arrive without the test sleeping.
	start := time.Now()
	mustAppend(t, s, streams[0], eventstore.Any, ev("auth.logout", `{}`))
	mustAppend(t, s, streams[1], eventstore.Any, ev("auth.logout", `{}`), ev("auth.logout", `{}`))
	got = c.waitN(t, 28)
	t.Logf("live events delivered %s after the first append", time.Since(start).Round(time.Millisecond))
	all = readAllN(ctx, t, s, eventstore.Filter{}, 28)
	equalIDs(t, "catch-up then live", ids(got), ids(all))
	checkStoreOrder(t, got)

	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe returned %v after cancel, want context.Canceled", err)
	}
	if got, _ := c.snapshot(); len(got) != 28 {
		t.Fatalf("%d events delivered, want 28 (duplicates?)", len(got))
	}
	// A cancelled context stops Subscribe before it reads anything.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Subscribe(cctx, eventstore.Start, eventstore.SubscribeOptions{}, newCollector().handle); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with a cancelled context: %v", err)
	}
}

func testSubscribeCheckpoint(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	a, b := newStream("user"), newStream("user")
	appendSpread(t, s, []string{a, b}, 30)
	all := readAllN(ctx, t, s, eventstore.Filter{}, 30)

	// From a mid checkpoint: exactly the events after it.
	c := newCollector()
	stop := subscribe(ctx, s, all[11].Position, eventstore.SubscribeOptions{BatchSize: 7, PollInterval: 5 * time.Millisecond}, c)
	c.waitN(t, 18)
	time.Sleep(50 * time.Millisecond) // several idle polls: nothing more may come
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got, batches := c.snapshot()
	equalIDs(t, "from checkpoint "+all[11].Position.String(), ids(got), ids(all[12:]))
	for _, n := range batches {
		if n > 7 {
			t.Fatalf("batches %v exceed BatchSize 7", batches)
		}
	}

	// With a filter.
	c = newCollector()
	stop = subscribe(ctx, s, eventstore.Start, eventstore.SubscribeOptions{BatchSize: 4, Filter: eventstore.Filter{Stream: a}}, c)
	c.waitN(t, 15)
	mustAppend(t, s, b, eventstore.Any, ev("auth.logout", `{}`))
	last := mustAppend(t, s, a, eventstore.Any, ev("auth.logout", `{}`))
	c.waitN(t, 16)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got, _ = c.snapshot()
	want := ids(readAllN(ctx, t, s, eventstore.Filter{Stream: a}, 16))
	equalIDs(t, "filtered subscription", ids(got), want)
	if got[15].ID != last.IDs[0] {
		t.Fatal("the live event of the filtered stream is missing")
	}

	// From the head: only what comes later.
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c = newCollector()
	stop = subscribe(ctx, s, head, eventstore.SubscribeOptions{}, c)
	r := mustAppend(t, s, b, eventstore.Any, ev("auth.logout", `{}`))
	c.waitN(t, 1)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got, _ = c.snapshot()
	equalIDs(t, "from the head", ids(got), r.IDs)
}

func testSubscribeHandlerError(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	appendSpread(t, s, []string{newStream("user")}, 5)
	readAllN(ctx, t, s, eventstore.Filter{}, 5)
	boom := errors.New("boom")
	calls := 0
	err := s.Subscribe(ctx, eventstore.Start, eventstore.SubscribeOptions{BatchSize: 2}, func(context.Context, []eventstore.Event) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("Subscribe returned %v after %d calls; want the handler's error after 1", err, calls)
	}
}

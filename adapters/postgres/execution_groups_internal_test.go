package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// groupFixture is a store with operators whose states an Executions
// remembers, and a way to make their next decisions wait in one queue.
type groupFixture struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	x     *Executions
	users []string
	day   string
}

func newGroupFixture(t *testing.T, users int) *groupFixture {
	t.Helper()
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	f := &groupFixture{t: t, ctx: app.WithCaller(context.Background(), app.Caller{Email: "test", RequestID: "r1"}),
		pool: pool, x: NewExecutions(store), day: domain.UTCDay(time.Now())}
	for i := range users {
		email, _ := domain.ParseEmail(fmt.Sprintf("op%d@example.com", i))
		u, err := domain.NewUser(uuid.NewString(), email, domain.RoleOperator)
		if err != nil {
			t.Fatal(err)
		}
		if err := NewUsers(store, 0).Create(f.ctx, u, app.Credentials{PasswordHash: domain.NewSecret("h")}); err != nil {
			t.Fatal(err)
		}
		f.users = append(f.users, u.ID())
		f.accept(u.ID()) // the locking way; the state is remembered after it
	}
	return f
}

// accept decides one more order (10 of notional) for user and returns the
// order counts its decision saw, and its stream.
func (f *groupFixture) accept(user string) ([]int, string) {
	var seen []int
	stream := domain.ExecutionStream(uuid.NewString())
	_, err := f.x.Decide(f.ctx, app.DecideRequest{UserID: user, Exchange: domain.ExchangeBinance, Day: f.day, Stream: stream},
		func(s app.ExecutionState) (app.Decided, error) {
			seen = append(seen, s.Usage.Orders)
			return app.Decided{Events: []domain.Event{{Type: "test.decided", SchemaVersion: 1, Data: map[string]string{}}},
				Usage: domain.DailyUsage{Orders: s.Usage.Orders + 1, Notional: s.Usage.Notional.Add(decimal.NewFromInt(10))}}, nil
		})
	if err != nil {
		f.t.Error(err)
	}
	return seen, stream
}

type groupResult struct {
	seen   []int
	stream string
}

// queued runs accept for each user concurrently while every sender is
// busy, so all of them wait in the queue, then sends the queue.
func (f *groupFixture) queued(users ...string) []groupResult {
	g := &f.x.groups
	g.mu.Lock()
	g.senders = maxGroupSenders
	g.mu.Unlock()
	out := make([]groupResult, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() { out[i].seen, out[i].stream = f.accept(u) })
		for { // in order: the queue is FIFO
			g.mu.Lock()
			n := len(g.queue)
			g.mu.Unlock()
			if n == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	g.mu.Lock()
	g.senders = 1
	g.mu.Unlock()
	g.send()
	wg.Wait()
	return out
}

// transactionOf is the transaction that appended stream's event.
func (f *groupFixture) transactionOf(stream string) string {
	var xid string
	if err := f.pool.QueryRow(f.ctx, `SELECT transaction_id::text FROM watermill_events WHERE metadata->>'stream_id' = $1`, stream).Scan(&xid); err != nil {
		f.t.Fatal(err)
	}
	return xid
}

func (f *groupFixture) orders(user string) int {
	var n int
	if err := f.pool.QueryRow(f.ctx, `SELECT orders FROM execution_daily_usage WHERE user_id = $1 AND day = $2::date`, user, f.day).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestDecisionGroups: decisions waiting together are written in one
// transaction, each on its own remembered state, and a second decision for
// a state already in the group waits for the next group and is made on the
// state the first one wrote.
func TestDecisionGroups(t *testing.T) {
	f := newGroupFixture(t, 3)
	a, b, c := f.users[0], f.users[1], f.users[2]
	got := f.queued(a, b, a, c)
	for i, want := range []int{1, 1, 2, 1} {
		if len(got[i].seen) != 1 || got[i].seen[0] != want {
			t.Fatalf("decision %d saw orders %v, want [%d]", i, got[i].seen, want)
		}
	}
	group := f.transactionOf(got[0].stream)
	if f.transactionOf(got[1].stream) != group || f.transactionOf(got[3].stream) != group {
		t.Fatal("a, b and c were not committed in one transaction")
	}
	if f.transactionOf(got[2].stream) == group {
		t.Fatal("a's second decision was in the group of its first")
	}
	for u, want := range map[string]int{a: 3, b: 2, c: 2} {
		if n := f.orders(u); n != want {
			t.Fatalf("user %s: %d orders, want %d", u, n, want)
		}
	}
}

// TestDecisionGroupsStaleMember: when one decision of a group was made on a
// stale state (another process wrote the user's usage), the group writes
// nothing; the stale decision is made again alone on the fresh state and
// the others are sent again as a group, each written exactly once.
func TestDecisionGroupsStaleMember(t *testing.T) {
	f := newGroupFixture(t, 3)
	a, b, c := f.users[0], f.users[1], f.users[2]
	if _, err := f.pool.Exec(f.ctx, `UPDATE execution_daily_usage SET orders = 7 WHERE user_id = $1`, b); err != nil {
		t.Fatal(err)
	}
	got := f.queued(a, b, c)
	if last := got[1].seen[len(got[1].seen)-1]; last != 7 {
		t.Fatalf("the stale decision saw %v, last want 7", got[1].seen)
	}
	if f.transactionOf(got[0].stream) != f.transactionOf(got[2].stream) {
		t.Fatal("a and c were not sent again as one group")
	}
	if f.transactionOf(got[1].stream) == f.transactionOf(got[0].stream) {
		t.Fatal("the stale decision was in the group")
	}
	if len(got[0].seen) != 2 || got[0].seen[0] != 1 || got[0].seen[1] != 1 {
		t.Fatalf("a's decisions saw %v, want [1 1] (decided again for the second group)", got[0].seen)
	}
	for u, want := range map[string]int{a: 2, b: 8, c: 2} {
		if n := f.orders(u); n != want {
			t.Fatalf("user %s: %d orders, want %d", u, n, want)
		}
	}
	var events int
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM watermill_events WHERE event_type = 'test.decided'`).Scan(&events); err != nil || events != 6 {
		t.Fatalf("%d events, want 6 (%v)", events, err)
	}
}

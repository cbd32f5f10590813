package projections

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// roundTrips counts the ReadyForQuery messages the server sends through a
// proxy: one per simple query or Sync, i.e. one per wait for the database
// (a pipelined pgx batch is one).
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) forward(client, server net.Conn) {
	in := bufio.NewReader(server)
	var head [5]byte
	for {
		if _, err := io.ReadFull(in, head[:]); err != nil {
			return
		}
		if head[0] == 'Z' {
			c.n.Add(1)
		}
		n := int64(binary.BigEndian.Uint32(head[1:])) - 4
		if _, err := client.Write(head[:]); err != nil {
			return
		}
		if _, err := io.CopyN(client, in, n); err != nil {
			return
		}
	}
}

// countingPool is a one-connection pool on env's database through a proxy
// that counts round trips.
func countingPool(t *testing.T, env testEnv) (*pgxpool.Pool, *roundTrips) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(env.url)
	if err != nil {
		t.Fatal(err)
	}
	counter := &roundTrips{}
	proxy, err := testdb.Listen(fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port), counter.forward)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	host, port, _ := net.SplitHostPort(proxy.Addr())
	cfg.ConnConfig.Host, cfg.ConnConfig.TLSConfig, cfg.ConnConfig.Fallbacks = host, nil, nil
	if _, err := fmt.Sscan(port, &cfg.ConnConfig.Port); err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // one connection, whose statements are prepared by the warm-up
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, counter
}

// nothing is a projection whose Apply costs no round trip.
type nothing struct{}

func (nothing) Name() string                                                { return "nothing" }
func (nothing) Version() int                                                { return 1 }
func (nothing) Tables() []string                                            { return nil }
func (nothing) Apply(context.Context, Tx, Tables, []eventstore.Event) error { return nil }

// A live batch costs three round trips besides Apply's own: BEGIN, SET
// LOCAL and the checkpoint lock in one, the read, the checkpoint and COMMIT
// in one. It logs what each projection's batch costs.
func TestRunnerStepRoundTrips(t *testing.T) {
	env := newEnv(t)
	pool, counter := countingPool(t, env)
	ps := append([]Projection{nothing{}}, All()...)
	r := NewRunner(pool, env.store, ps)
	appendSome := func() {
		for i := range 5 {
			env.appendOne(t, "execution-rt", "user-a", "test.round_trip", map[string]any{"n": i})
		}
		env.waitVisible(t)
	}
	appendSome() // the warm-up batch prepares the connection's statements
	for _, p := range ps {
		if err := ensureCheckpoint(context.Background(), pool, p); err != nil {
			t.Fatal(err)
		}
		if _, err := r.step(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	appendSome()
	for _, p := range ps {
		before := counter.n.Load()
		n, err := r.step(context.Background(), p)
		if err != nil || n != 5 {
			t.Fatalf("%s: step = %d, %v", p.Name(), n, err)
		}
		got := counter.n.Load() - before
		t.Logf("%s: %d round trips for a batch of 5 events", p.Name(), got)
		if p.Name() == "nothing" && got != 3 {
			t.Errorf("a batch whose Apply costs none took %d round trips, want 3", got)
		}
	}
}

// halfway writes every good event of a batch and only then fails on the
// first poison one ({"poison": true}): its failed batch leaves writes that
// must be rolled back before the batch is redone, or the redo would find
// them (a primary key violation) and the good events would count twice.
type halfway struct{}

func (halfway) Name() string     { return "halfway" }
func (halfway) Version() int     { return 1 }
func (halfway) Tables() []string { return []string{"halfway"} }
func (halfway) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.Event) error {
	var ids []string
	var poison error
	for _, e := range events {
		if poison == nil && slices.Contains(e.Data, '!') {
			poison = &DataError{EventID: e.ID, Err: errors.New("poison")}
			continue
		}
		ids = append(ids, e.ID)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+t.Of("halfway").Sanitize()+` SELECT unnest($1::text[])`, ids); err != nil {
		return err
	}
	return poison
}

// A poison event met in the one-piece batch is still quarantined, and the
// batch's other events applied exactly once, in the same step.
func TestPoisonInALiveBatchIsQuarantinedAndTheRestAppliedOnce(t *testing.T) {
	env := newEnv(t)
	env.exec(t, `CREATE TABLE halfway (event_id TEXT PRIMARY KEY)`)
	var poison string
	for i := range 10 {
		data := map[string]any{"n": i}
		if i == 6 {
			data = map[string]any{"n": "!"}
		}
		id := env.appendOne(t, "execution-1", "user-a", "execution.prepare", data)
		if i == 6 {
			poison = id
		}
	}
	env.waitVisible(t)
	p := halfway{}
	if err := ensureCheckpoint(context.Background(), env.pool, p); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(env.pool, env.store, []Projection{p})
	if n, err := r.step(context.Background(), p); err != nil || n != 10 {
		t.Fatalf("step = %d, %v; want the whole batch of 10", n, err)
	}
	if n := env.count(t, `SELECT count(*) FROM halfway`); n != 9 {
		t.Fatalf("%d events applied, want the 9 good ones", n)
	}
	if n := env.count(t, `SELECT count(*) FROM halfway WHERE event_id = $1`, poison); n != 0 {
		t.Fatal("the poison event was applied")
	}
	rows, err := env.pool.Query(context.Background(), `SELECT event_id FROM projection_quarantine WHERE projection = 'halfway'`)
	if err != nil {
		t.Fatal(err)
	}
	quarantined, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !slices.Equal(quarantined, []string{poison}) {
		t.Fatalf("quarantined %v (%v), want [%s]", quarantined, err, poison)
	}
	if s, err := ReadStatus(context.Background(), env.pool, []Projection{p}); err != nil || s[0].State != "live" || s[0].LagEvents != 0 {
		t.Fatalf("status %+v, %v", s, err)
	}
}

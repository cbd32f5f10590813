package projections

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

// onePool is a one-connection pool on env's database — its statements
// prepared once, by a warm-up batch — through a proxy that counts round
// trips when counter is set.
func onePool(t testing.TB, env testEnv, counter *roundTrips) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(env.url)
	if err != nil {
		t.Fatal(err)
	}
	if counter != nil {
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
	}
	cfg.MaxConns = 1
	// No liveness ping of a connection idle for a second (a slow append on
	// a loaded machine) among the round trips counted.
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
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
	counter := &roundTrips{}
	pool := onePool(t, env, counter)
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

// BenchmarkLiveBatch applies batches of 5 events to every projection, the
// live runner's usual wake-up under load, by the one-piece batch (fast) and
// by the savepointed one (careful), and reports per wake-up this process's
// CPU and the PostgreSQL backend's (TestRunnerStepRoundTrips counts the
// round trips).
func BenchmarkLiveBatch(b *testing.B) {
	modes := []struct {
		name string
		step func(*Runner, context.Context, Projection) (int, error)
	}{
		{"fast", (*Runner).step},
		{"careful", func(r *Runner, ctx context.Context, p Projection) (int, error) {
			n, _, err := r.stepCareful(ctx, p)
			return n, err
		}},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			env := newEnv(b)
			pool := onePool(b, env, nil) // a proxy's CPU would count as ours
			var backend int
			if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
				b.Fatal(err)
			}
			ps := All()
			r := NewRunner(pool, env.store, ps)
			for _, p := range ps {
				if err := ensureCheckpoint(ctx, pool, p); err != nil {
					b.Fatal(err)
				}
			}
			var self, server time.Duration
			wakes := 0
			for b.Loop() {
				b.StopTimer()
				for i := range 5 {
					env.appendOne(b, "execution-bench", "user-a", "test.bench", map[string]any{"n": i})
				}
				env.waitVisible(b)
				server0 := backendCPU(b, backend)
				self0 := processCPU(b)
				b.StartTimer()
				for _, p := range ps {
					if _, err := mode.step(r, ctx, p); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				self += processCPU(b) - self0
				server += backendCPU(b, backend) - server0 // after: reading it costs us CPU
				wakes++
				b.StartTimer()
			}
			b.ReportMetric(float64(self.Microseconds())/float64(wakes), "self-µs/wake")
			b.ReportMetric(float64(server.Microseconds())/float64(wakes), "pg-µs/wake")
		})
	}
}

// processCPU is the CPU time this process has used.
func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU is the CPU time the PostgreSQL backend pid has used (it must
// run on this machine), in clock ticks of 10 ms: compare sums over many
// batches, not one.
func backendCPU(t testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("the backend's CPU time: %v", err)
	}
	// The fields after the command name (which may hold spaces): state is
	// the first, utime and stime the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Command bench measures the event store against plain PostgreSQL on the
// same server, in a database it creates and drops:
//
//   - append: one-event commands through Store.Append (NoStream into fresh
//     streams, Exact and Any on an existing stream per worker) against
//     single-row autocommit INSERTs of the same payload and metadata into a
//     plain table, and into a twin of the event table (same columns and
//     indexes: the floor for any append), at concurrency 1 and 16;
//   - replay: Store.Replay of N generated events to io.Discard against a
//     plain `SELECT * ... ORDER BY transaction_id, "offset"` scan.
//
// `make bench` runs it as `go run ./internal/bench`; -quick is a short run.
// The server is DATABASE_URL's (or 127.0.0.1:5432). Numbers on a shared
// server are noisy: the append cases run interleaved in rounds so drift hits
// them alike, and each replay measurement is the best of two.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/benchcpu"
	"github.com/tradeops/tradeops/internal/testdb"
)

type config struct {
	duration   time.Duration
	rounds     int
	replayN    int
	chunk      int
	adminURL   string
	cpuProfile string
	skipAppend bool
	skipReplay bool
}

func main() {
	var c config
	quick := flag.Bool("quick", false, "short run: 1s per append case, 10k replay events")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "how long each append case runs (split into rounds)")
	flag.IntVar(&c.replayN, "events", 1_000_000, "events generated for the replay benchmark")
	flag.StringVar(&c.adminURL, "admin-url", "", "server to create the bench database on (default: DATABASE_URL, else 127.0.0.1:5432)")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write CPU profiles of the append runs to `FILE`.append and of the replay runs to FILE.replay")
	flag.BoolVar(&c.skipAppend, "no-append", false, "skip the append benchmark")
	flag.BoolVar(&c.skipReplay, "no-replay", false, "skip the replay benchmark")
	flag.Parse()
	if *quick {
		c.duration, c.replayN = time.Second, 10_000
	}
	c.rounds, c.chunk = 10, 50_000

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, out io.Writer) (err error) {
	dbURL, drop, err := testdb.CreateDatabase(ctx, c.adminURL, "bench_eventstore", true)
	if err != nil {
		return err
	}
	defer func() {
		if derr := drop(); err == nil {
			err = derr
		}
	}()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	var version string
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&version); err != nil {
		return err
	}
	fmt.Fprintf(out, "event store benchmark: PostgreSQL %s, %d CPUs, GOMAXPROCS %d, %s\n\n", version, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	s := eventstore.New(pool)
	if !c.skipAppend {
		stop, err := startProfile(c.cpuProfile, "append")
		if err != nil {
			return err
		}
		err = benchAppend(ctx, c, pool, s, out)
		stop()
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if !c.skipReplay {
		if err := benchReplay(ctx, c, pool, s, out); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}

// A realistic command: an execution.prepare payload (~200 bytes) and full
// metadata.
var (
	payload = json.RawMessage(`{"execution_id":"0190f3c2-6d1e-7c4b-9a55-3f0e2b7c1a90","exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":"0.01","price":"64250.10","reference_price":"64251.37","notional":"642.50","risk_profile":"model2","decision":"accepted"}`)
	md      = eventstore.Metadata{
		ActorID:       "0190f3c2-0000-7000-8000-00000000a11c",
		ActorEmail:    "operator@example.com",
		CorrelationID: "req-0190f3c2-6d1e-7c4b-9a55-3f0e2b7c1a90",
		CausationID:   "0190f3c2-6d1e-7c4b-9a55-3f0e2b7c1a91",
		ClientIP:      "203.0.113.42",
	}
)

// plainMetadata is the metadata JSON Store.Append writes for such an event
// (the watermill message metadata), so the plain INSERT moves the same bytes.
func plainMetadata() []byte {
	b, _ := json.Marshal(map[string]string{
		"actor_id": md.ActorID, "actor_email": md.ActorEmail, "correlation_id": md.CorrelationID,
		"causation_id": md.CausationID, "client_ip": md.ClientIP, "stream_id": "execution-" + uuid.NewString(),
		"event_type": "execution.prepare", "schema_version": "1", "expected_version": "0",
		"recorded_at": time.Now().UTC().Format(time.RFC3339Nano),
	})
	return b
}

type appendCase struct {
	name string
	// op appends one event for worker w.
	op    func(ctx context.Context, w int) error
	setup func(workers int)
	ops   int64
	dur   time.Duration
	cpu   benchcpu.Usage // summed over the rounds
}

func benchAppend(ctx context.Context, c config, pool *pgxpool.Pool, s *eventstore.Store, out io.Writer) error {
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_plain (
		"offset" BIGSERIAL PRIMARY KEY, uuid VARCHAR(36) NOT NULL, payload JSON, metadata JSON,
		created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`); err != nil {
		return err
	}
	mdJSON := plainMetadata()
	ev := eventstore.NewEvent{Type: "execution.prepare", SchemaVersion: 1, Data: payload}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_twin (LIKE `+eventstore.Table+` INCLUDING ALL)`); err != nil {
		return err
	}
	var streams, anyStreams []string
	var versions []int64
	newStreams := func(workers int) []string {
		out := make([]string, workers)
		for i := range out {
			out[i] = "execution-" + uuid.NewString()
		}
		return out
	}
	cases := []*appendCase{
		{name: "plain INSERT, autocommit", op: func(ctx context.Context, _ int) error {
			_, err := pool.Exec(ctx, `INSERT INTO bench_plain (uuid, payload, metadata) VALUES ($1, $2, $3)`,
				uuid.Must(uuid.NewV7()).String(), []byte(payload), mdJSON)
			return err
		}},
		// The event table's shape (its columns, the primary key on
		// (transaction_id, offset) and UNIQUE(stream_id, stream_version))
		// with a plain INSERT: the floor any append on this table can reach.
		{name: "plain INSERT into an event-table twin", op: func(ctx context.Context, _ int) error {
			_, err := pool.Exec(ctx, `INSERT INTO bench_twin (uuid, payload, metadata, transaction_id, stream_id, stream_version, event_type, schema_version, recorded_at)
				VALUES ($1, $2, $3, pg_current_xact_id(), $4, 1, 'execution.prepare', 1, now())`,
				uuid.Must(uuid.NewV7()).String(), []byte(payload), mdJSON, "execution-"+uuid.NewString())
			return err
		}},
		{name: "Store.Append NoStream, new stream", op: func(ctx context.Context, _ int) error {
			_, err := s.Append(ctx, "execution-"+uuid.NewString(), eventstore.NoStream, md, ev)
			return err
		}},
		{name: "Store.Append Exact, existing stream", op: func(ctx context.Context, w int) error {
			r, err := s.Append(ctx, streams[w], eventstore.Exact(versions[w]), md, ev)
			versions[w] = r.Version
			return err
		}, setup: func(workers int) { streams, versions = newStreams(workers), make([]int64, workers) }},
		{name: "Store.Append Any, existing stream", op: func(ctx context.Context, w int) error {
			_, err := s.Append(ctx, anyStreams[w], eventstore.Any, md, ev)
			return err
		}, setup: func(workers int) { anyStreams = newStreams(workers) }},
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(out, "append: one event per command, %s per case in %d interleaved rounds\n", c.duration, c.rounds)
	fmt.Fprintln(tw, "case\tconcurrency\tevents\tevents/s\tvs plain\tclient CPU µs/ev\tserver CPU µs/ev\t")
	for _, conc := range []int{1, 16} {
		for _, k := range cases {
			k.ops, k.dur = 0, 0
			if k.setup != nil {
				k.setup(conc)
			}
		}
		for range c.rounds {
			for _, k := range cases {
				m, err := benchcpu.Start(ctx, pool)
				if err != nil {
					return err
				}
				n, d, err := measure(ctx, conc, c.duration/time.Duration(c.rounds), k.op)
				if err != nil {
					return fmt.Errorf("%s at %d: %w", k.name, conc, err)
				}
				u, err := m.Stop(ctx)
				if err != nil {
					return err
				}
				k.ops += n
				k.dur += d
				k.cpu.Wall, k.cpu.Client, k.cpu.Server = k.cpu.Wall+u.Wall, k.cpu.Client+u.Client, k.cpu.Server+u.Server
			}
		}
		plain := rate(cases[0].ops, cases[0].dur)
		for _, k := range cases {
			r := rate(k.ops, k.dur)
			perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(k.ops) }
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.1f\t%.1f\t\n", k.name, conc, k.ops, r, r/plain,
				perEvent(k.cpu.Client), perEvent(k.cpu.Server))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "(CPU µs/event: this process, and the server backends of the bench database; the two share the machine's cores)")
	fmt.Fprintln(out)
	return nil
}

func rate(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() }

// measure runs op from `workers` goroutines for about d and counts the
// completed ops.
func measure(ctx context.Context, workers int, d time.Duration, op func(context.Context, int) error) (int64, time.Duration, error) {
	var n atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := op(ctx, w); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load(), time.Since(start), firstErr
}

// generateSQL inserts $2 events numbered from $1: streams of 10 events,
// ~200-byte execution payloads, and the metadata Store.Append writes (the
// watermill message metadata, keys in encoding/json's order).
const generateSQL = `
INSERT INTO ` + eventstore.Table + ` (uuid, payload, metadata, transaction_id, stream_id, stream_version, event_type, schema_version, recorded_at)
SELECT gen_random_uuid()::text,
	json_build_object('execution_id', gen_random_uuid(), 'exchange', 'BINANCE', 'symbol', 'BTCUSDT', 'side', 'BUY',
		'qty', '0.01', 'price', (60000 + i % 5000)::text || '.10', 'reference_price', (60000 + i % 5000)::text || '.37',
		'notional', '642.50', 'risk_profile', 'model2', 'decision', 'accepted'),
	json_build_object('actor_email', 'user' || i % 100 || '@example.com',
		'actor_id', '0190f3c2-0000-7000-8000-' || lpad((i % 100)::text, 12, '0'),
		'causation_id', gen_random_uuid(), 'client_ip', '10.1.' || i % 250 || '.' || i % 199,
		'correlation_id', 'req-' || gen_random_uuid(), 'event_type', 'execution.prepare',
		'expected_version', (i % 10)::text,
		'recorded_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'schema_version', '1', 'stream_id', 'execution-' || lpad((i / 10)::text, 12, '0')),
	pg_current_xact_id(), 'execution-' || lpad((i / 10)::text, 12, '0'), i % 10 + 1, 'execution.prepare', 1, at
FROM (SELECT i, timestamptz '2024-01-01 00:00:00Z' + i * interval '1 millisecond' AS at
	FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS i) g`

func benchReplay(ctx context.Context, c config, pool *pgxpool.Pool, s *eventstore.Store, out io.Writer) error {
	// Generate in chunks, each its own transaction: a long write transaction
	// would hold back the server-wide xmin and stall every reader on the
	// server for its whole duration.
	if _, err := pool.Exec(ctx, `TRUNCATE `+eventstore.Table); err != nil { // the append benchmark's events
		return err
	}
	start := time.Now()
	for from := 0; from < c.replayN; from += c.chunk {
		if _, err := pool.Exec(ctx, generateSQL, from, min(c.chunk, c.replayN-from)); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) `+eventstore.Table); err != nil {
		return err
	}
	var size int64
	var avgPayload, avgMeta float64
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size($1), avg(octet_length(payload::text)), avg(octet_length(metadata::text)) FROM `+eventstore.Table,
		"watermill_events").Scan(&size, &avgPayload, &avgMeta); err != nil {
		return err
	}
	fmt.Fprintf(out, "replay: %d events generated in %s (table+indexes %d MB; avg payload %.0f B, metadata %.0f B)\n",
		c.replayN, time.Since(start).Round(time.Millisecond), size>>20, avgPayload, avgMeta)

	// Everything just committed must be visible before timing a replay (an
	// open transaction elsewhere on the server hides it).
	if err := waitVisible(ctx, s, int64(c.replayN)); err != nil {
		return err
	}
	scan := func() (int64, error) {
		rows, err := pool.Query(ctx, `SELECT * FROM `+eventstore.Table+` ORDER BY transaction_id, "offset"`)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var n int64
		for rows.Next() {
			n++
		}
		return n, rows.Err()
	}
	var written countingWriter
	replay := func() (int64, error) {
		written = 0
		n, _, err := s.Replay(ctx, &written, eventstore.ReplayOptions{})
		return n, err
	}
	if _, err := scan(); err != nil { // warm the cache for both
		return err
	}
	stop, err := startProfile(c.cpuProfile, "replay")
	if err != nil {
		return err
	}
	defer stop()
	var best [2]time.Duration
	for range 2 {
		for i, f := range []func() (int64, error){replay, scan} {
			t0 := time.Now()
			n, err := f()
			d := time.Since(t0)
			if err != nil {
				return err
			}
			if n != int64(c.replayN) {
				return fmt.Errorf("read %d events, want %d", n, c.replayN)
			}
			if best[i] == 0 || d < best[i] {
				best[i] = d
			}
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tevents\tseconds\tevents/s\tvs scan\t")
	scanRate := rate(int64(c.replayN), best[1])
	replayRate := rate(int64(c.replayN), best[0])
	fmt.Fprintf(tw, "Store.Replay to io.Discard (%d MB of JSON lines)\t%d\t%.2f\t%.0f\t%.2f\t\n", int64(written)>>20, c.replayN, best[0].Seconds(), replayRate, replayRate/scanRate)
	fmt.Fprintf(tw, "SELECT * ORDER BY transaction_id, offset (pgx, discard)\t%d\t%.2f\t%.0f\t%.2f\t\n", c.replayN, best[1].Seconds(), scanRate, 1.0)
	return tw.Flush()
}

// startProfile starts a CPU profile into prefix.name, unless prefix is empty.
func startProfile(prefix, name string) (stop func(), err error) {
	if prefix == "" {
		return func() {}, nil
	}
	f, err := os.Create(prefix + "." + name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func waitVisible(ctx context.Context, s *eventstore.Store, n int64) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var visible int64
		err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM `+eventstore.Table+` WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`).Scan(&visible)
		if err != nil {
			return err
		}
		if visible >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("generated events did not become visible within 5 minutes (a long open transaction on the server?)")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

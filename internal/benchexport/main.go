// Command benchexport measures the export of the event stream to NATS
// JetStream (export.Relay) on a real PostgreSQL and a private nats-server
// (-js, file storage, started on a free port under a temporary directory):
//
//  1. throughput: N events (default 100k) exported into an empty stream,
//     as events/s and as a ratio to a plain SELECT scan of the same rows in
//     the same run (each measured -runs times, the best kept), with the
//     client's and the server backends' CPU time; -cpuprofile writes a
//     profile of the last export;
//  2. live lag: events appended through Store.Append at -rate/s for
//     -lag-for, time from the append's return until an ordered consumer of
//     the stream receives the message (the relay's default poll: 10ms idle,
//     sooner right after events), with the CPU the run took.
//
// Run it with `go run ./internal/benchexport` (DATABASE_URL or
// TEST_DATABASE_URL names the server; a scratch database is created and
// dropped). nats-server comes from NATS_SERVER_BIN, PATH or /usr/sbin; the
// first line names its version.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/export"
	"github.com/tradeops/tradeops/internal/benchcpu"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/natstest"
	"github.com/tradeops/tradeops/internal/testdb"
)

func main() {
	events := flag.Int("events", 100_000, "events in the store")
	runs := flag.Int("runs", 2, "times each throughput case runs (the best is kept)")
	lagFor := flag.Duration("lag-for", 10*time.Second, "how long to append at --rate for the live lag (0: skip)")
	rate := flag.Int("rate", 200, "appends per second for the live lag")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the last export to `FILE`")
	flag.IntVar(&batch, "batch", 1000, "the relay's batch size")
	flag.Parse()
	if err := run(context.Background(), *events, *runs, *lagFor, *rate, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "benchexport:", err)
		os.Exit(1)
	}
}

var batch int

func run(ctx context.Context, events, runs int, lagFor time.Duration, rate int, profile string) error {
	bin, err := natstest.Binary()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchexport-nats-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := natstest.StartIn(bin, dir)
	if err != nil {
		return err
	}
	defer srv.Kill()
	url, drop, err := testdb.CreateDatabase(ctx, "", "bench_export", true)
	if err != nil {
		return err
	}
	defer drop() //nolint:errcheck // best effort
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := eventstore.New(pool)
	start := time.Now()
	if err := eventgen.Insert(ctx, pool, events, 10_000, 1000); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+eventstore.Table); err != nil {
		return err
	}
	if err := eventgen.WaitVisible(ctx, pool); err != nil {
		return err
	}
	version, err := serverVersion(srv.URL)
	if err != nil {
		return err
	}
	fmt.Printf("generated %d events in %s; nats-server %s (%s)\n\n", events, time.Since(start).Round(time.Millisecond), version, bin)

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var scan, exp result
	var last export.Config
	for i := range runs {
		r, err := measure(ctx, pool, "", func() error { return eventgen.ScanAll(ctx, pool) })
		if err != nil {
			return err
		}
		scan = scan.best(r)
		last = config(srv.URL, i)
		prof := ""
		if i == runs-1 {
			prof = profile
		}
		brokerBefore := srv.CPU()
		r, err = measure(ctx, pool, prof, func() error {
			return export.NewRelay(pool, store, last, export.UntilCaughtUp(), export.WithBatchSize(batch), export.WithLogger(quiet)).Run(ctx)
		})
		if err != nil {
			return err
		}
		r.broker = srv.CPU() - brokerBefore
		exp = exp.best(r)
		if st, err := export.Inspect(ctx, last); err != nil || st.Messages != uint64(events) {
			return fmt.Errorf("stream %s holds %d messages, want %d (%v)", last.Stream, st.Messages, events, err)
		}
	}
	eps := func(d time.Duration) float64 { return float64(events) / d.Seconds() }
	fmt.Printf("throughput, %d events (best of %d)\n", events, runs)
	fmt.Printf("  %-44s %8.0f events/s  %s\n", "plain SELECT scan of the rows", eps(scan.took), scan.cpu)
	fmt.Printf("  %-44s %8.0f events/s  %s\n", fmt.Sprintf("export to JetStream (relay, batch %d)", batch), eps(exp.took), exp.cpu)
	fmt.Printf("  export / scan: %.2fx (goal >= 0.2x)\n", scan.took.Seconds()/exp.took.Seconds())
	per := func(d time.Duration) float64 { return perEvent(d, events) }
	fmt.Printf("  CPU per exported event: relay %.1f µs, PostgreSQL backends %.1f µs, nats-server %.1f µs; per scanned row: client %.1f µs, backends %.1f µs\n\n",
		per(exp.cpu.Client), per(exp.cpu.Server), per(exp.broker), per(scan.cpu.Client), per(scan.cpu.Server))
	if lagFor > 0 {
		return measureLag(ctx, pool, store, srv, last, lagFor, rate, quiet)
	}
	return nil
}

// serverVersion is the version the server at url announces: the tables
// compare NATS releases (NATS_SERVER_BIN), so each says which it measured.
func serverVersion(url string) (string, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	return nc.ConnectedServerVersion(), nil
}

func config(url string, i int) export.Config {
	return export.Config{URL: url, Stream: fmt.Sprintf("BENCH_%d", i), SubjectPrefix: fmt.Sprintf("bench%d.events", i),
		Replicas: 1, Duplicates: export.DefaultDuplicates}
}

type result struct {
	took   time.Duration
	cpu    benchcpu.Usage
	broker time.Duration // nats-server's CPU time
}

func (r result) best(o result) result {
	if r.took == 0 || o.took < r.took {
		return o
	}
	return r
}

func measure(ctx context.Context, pool *pgxpool.Pool, profile string, f func() error) (result, error) {
	if profile != "" {
		out, err := os.Create(profile)
		if err != nil {
			return result{}, err
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return result{}, err
		}
		defer pprof.StopCPUProfile()
	}
	m, err := benchcpu.Start(ctx, pool)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := f(); err != nil {
		return result{}, err
	}
	r := result{took: time.Since(start)}
	r.cpu, err = m.Stop(ctx)
	return r, err
}

// measureLag appends at rate/s with the relay running live on cfg's
// stream (caught up) and times each event until a consumer receives it.
func measureLag(ctx context.Context, pool *pgxpool.Pool, store *eventstore.Store, srv *natstest.Server, cfg export.Config, d time.Duration, rate int, log *slog.Logger) error {
	nc, err := nats.Connect(cfg.URL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	appended, received := map[string]time.Time{}, map[string]time.Time{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		mu.Lock()
		received[m.Headers().Get(jetstream.MsgIDHeader)] = now
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer cc.Stop()

	// The baseline: when each event becomes visible to a gap-free read at
	// all. The xmin horizon is the whole server's: a transaction left open
	// in another database (another test, another helper) holds every
	// reader back, the relay and this poller alike.
	visible := map[string]time.Time{}
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		after, _ := store.Head(pollCtx)
		for pollCtx.Err() == nil {
			evs, err := store.Read(pollCtx, after, 1000, eventstore.Filter{})
			now := time.Now()
			if err == nil && len(evs) > 0 {
				mu.Lock()
				for _, e := range evs {
					visible[e.ID] = now
				}
				mu.Unlock()
				after = evs[len(evs)-1].Position
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() { stopPoll(); <-pollDone }()

	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- export.NewRelay(pool, store, cfg, export.WithLogger(log)).Run(relayCtx) }()
	defer func() { stopRelay(); <-relayDone }()

	meter, err := benchcpu.Start(ctx, pool)
	if err != nil {
		return err
	}
	brokerBefore := srv.CPU()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); {
		<-tick.C
		data, _ := json.Marshal(map[string]any{"i": len(appended), "symbol": "BTCUSDT"})
		res, err := store.Append(ctx, fmt.Sprintf("lag-%d", len(appended)%50), eventstore.Any, eventstore.Metadata{},
			eventstore.NewEvent{Type: "bench.lag", SchemaVersion: 1, Data: data})
		if err != nil {
			return err
		}
		now := time.Now()
		mu.Lock()
		appended[res.IDs[0]] = now
		mu.Unlock()
	}
	cpu, err := meter.Stop(ctx)
	if err != nil {
		return err
	}
	broker := srv.CPU() - brokerBefore
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= len(appended) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	lags := make([]time.Duration, 0, len(appended))
	var vis, relay []time.Duration
	for id, at := range appended {
		if got, ok := received[id]; ok {
			lags = append(lags, got.Sub(at))
			if v, ok := visible[id]; ok {
				vis, relay = append(vis, v.Sub(at)), append(relay, max(0, got.Sub(v)))
			}
		}
	}
	if len(lags) != len(appended) {
		return fmt.Errorf("%d of %d appended events never reached the consumer", len(appended)-len(lags), len(appended))
	}
	fmt.Printf("live lag, Store.Append at %d/s for %s → message at a JetStream consumer (%d events)\n  %s (goal p99 <= 50ms)\n",
		rate, d, len(lags), benchcpu.Percentiles(lags))
	fmt.Printf("  CPU of the run per appended event: this process (appends, visibility poller, relay, consumer) %.0f µs, PostgreSQL backends %.0f µs, nats-server %.0f µs\n",
		perEvent(cpu.Client, len(lags)), perEvent(cpu.Server, len(lags)), perEvent(broker, len(lags)))
	if len(vis) > 0 {
		fmt.Printf("  of which: append → visible to a gap-free read (2ms poll): %s\n", benchcpu.Percentiles(vis))
		fmt.Printf("            visible → at the consumer (the relay and the broker): %s\n", benchcpu.Percentiles(relay))
	}
	return nil
}

func perEvent(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

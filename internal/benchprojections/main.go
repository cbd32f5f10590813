// Command benchprojections measures the projections on a real PostgreSQL:
//
//  1. the read side over N events (default 1M): Store.Read in keyset
//     batches, rebuild of audit_log, re-seal, verify, as events/s and as a
//     ratio to a plain SELECT scan of the same rows in the same run; the
//     rebuilds also as a ratio to a plain pipeline (the same rows read and
//     COPYed into a twin of audit_log, indexes built at the end), with the
//     client's and the server's CPU time for each (-cpuprofile PREFIX writes
//     a CPU profile per case);
//  2. GET /ops/audit/me?limit=100 latency against the handler (httptest)
//     with those N events in the store;
//  3. live lag: events appended through Store.Append at 200/s for 10 s,
//     time until each is in audit_log, with the live runner running every
//     projection (projections.All()).
//
// -requests 0 skips 2, -lag-for 0 skips 3.
//
// Run it with `go run ./internal/benchprojections` (DATABASE_URL or
// TEST_DATABASE_URL names the server; a scratch database is created and
// dropped).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/benchcpu"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
	"github.com/tradeops/tradeops/migrations"
	porthttp "github.com/tradeops/tradeops/ports/http"
	"github.com/tradeops/tradeops/projections"
)

// cpuProfile is the -cpuprofile prefix, only the -only pattern.
var cpuProfile, only string

func main() {
	events := flag.Int("events", 1_000_000, "events in the store")
	actors := flag.Int("actors", 1000, "users the events are spread over")
	requests := flag.Int("requests", 2000, "GET /ops/audit/me requests to time")
	lagFor := flag.Duration("lag-for", 10*time.Second, "how long to append at --rate for the live lag")
	rate := flag.Int("rate", 200, "appends per second for the live lag")
	keep := flag.Bool("keep", false, "keep the scratch database")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of each read-side case to `PREFIX`.<case>.pprof")
	flag.StringVar(&only, "only", "", "run only the read-side cases whose names match this `regexp` (besides the scan, and the pipeline when a rebuild runs)")
	flag.Parse()
	if err := run(context.Background(), *events, *actors, *requests, *lagFor, *rate, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "benchprojections:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, events, actors, requests int, lagFor time.Duration, rate int, keep bool) error {
	url, drop, err := scratchDB(ctx)
	if err != nil {
		return err
	}
	if !keep {
		defer drop()
	} else {
		fmt.Println("database:", url)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := eventstore.New(pool)

	start := time.Now()
	if err := eventgen.Insert(ctx, pool, events, 10_000, actors); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+eventstore.Table); err != nil {
		return err
	}
	fmt.Printf("generated %d events in %s\n\n", events, time.Since(start).Round(time.Millisecond))

	// 1. The read side vs a plain scan of the same rows, and the rebuild vs
	// a plain read-and-COPY pipeline into a twin of audit_log.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	record := app.NewRecordResealHandler(postgres.NewEvents(store))
	cases := []readCase{
		{name: "plain SELECT scan of the rows", run: func() error { return eventgen.ScanAll(ctx, pool) }},
		{name: "plain pipeline: SELECT, COPY into an audit_log twin, index", run: func() error { return pipeline(ctx, pool) }},
		{name: "keyset reads, 10000/batch (Store.Read)", run: func() error { return keysetReads(ctx, store) }},
		{name: "projections rebuild audit_log", run: func() error {
			_, err := projections.Rebuild(ctx, pool, store, projections.AuditLog{}, projections.RebuildOptions{Logger: logger})
			return err
		}},
		{name: "projections rebuild audit_seal --reseal", run: func() error {
			_, err := projections.Reseal(app.WithCaller(ctx, app.Caller{Email: "bench"}), pool, store, record, "bench", projections.RebuildOptions{Logger: logger})
			return err
		}},
		{name: "audit verify", run: func() error {
			rep, err := projections.Verify(ctx, pool, nil)
			if err == nil && rep.Break != nil {
				err = fmt.Errorf("verify: %v", rep.Break)
			}
			return err
		}},
	}
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			return err
		}
		rebuilds := false
		for _, c := range cases {
			rebuilds = rebuilds || strings.HasPrefix(c.name, "projections rebuild") && re.MatchString(c.name)
		}
		var keep []readCase
		for i, c := range cases {
			if i == 0 || re.MatchString(c.name) || rebuilds && strings.HasPrefix(c.name, "plain pipeline") {
				keep = append(keep, c)
			}
		}
		cases = keep
	}
	for i := range cases {
		if err := cases[i].measure(ctx, pool, cpuProfile); err != nil {
			return fmt.Errorf("%s: %w", cases[i].name, err)
		}
	}
	scan, pipe := cases[0].took, time.Duration(0)
	for _, c := range cases {
		if strings.HasPrefix(c.name, "plain pipeline") {
			pipe = c.took
		}
	}
	perSec := func(d time.Duration) float64 { return float64(events) / d.Seconds() }
	fmt.Printf("read side (%d events)                                     time      events/s  vs scan  vs pipeline\n", events)
	for _, c := range cases {
		vsPipe := ""
		if strings.HasPrefix(c.name, "projections rebuild") && pipe > 0 {
			vsPipe = fmt.Sprintf("%.2f", pipe.Seconds()/c.took.Seconds())
		}
		fmt.Printf("  %-56s %-9s %9.0f  %7.2f  %s\n", c.name, c.took.Round(time.Millisecond), perSec(c.took), scan.Seconds()/c.took.Seconds(), vsPipe)
	}
	fmt.Println("CPU (the client and the server share the machine's cores):")
	for _, c := range cases {
		fmt.Printf("  %-56s %s\n", c.name, c.cpu)
	}
	fmt.Println()

	// 2. The audit endpoint over the full read model.
	if requests > 0 {
		if err := timeHTTP(store, actors, requests); err != nil {
			return err
		}
	}

	// 3. Live lag under appends.
	if lagFor <= 0 {
		return nil
	}
	return measureLag(ctx, pool, store, lagFor, rate)
}

// readCase is one timed run of the read side.
type readCase struct {
	name string
	run  func() error
	took time.Duration
	cpu  benchcpu.Usage
}

// measure times c (and profiles it to profile.<n>.pprof when profile is set).
func (c *readCase) measure(ctx context.Context, pool *pgxpool.Pool, profile string) error {
	if profile != "" {
		f, err := os.Create(profile + "." + strings.NewReplacer(" ", "_", ",", "", ":", "", "/", "").Replace(c.name) + ".pprof")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	m, err := benchcpu.Start(ctx, pool)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := c.run(); err != nil {
		return err
	}
	c.took = time.Since(start)
	c.cpu, err = m.Stop(ctx)
	return err
}

func keysetReads(ctx context.Context, store *eventstore.Store) error {
	for after := eventstore.Start; ; {
		evs, err := store.Read(ctx, after, 10_000, eventstore.Filter{})
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		after = evs[len(evs)-1].Position
	}
}

// pipelineBatch is the rows per COPY (and per transaction) of the pipeline,
// the rebuild's default batch.
const pipelineBatch = 10_000

// pipeline is the limit a rebuild of audit_log can reach here: the same rows
// read by one plain SELECT (the actor columns extracted by the server) and
// scanned into typed values, COPYed pipelineBatch rows per transaction from
// a second connection while the next rows are read, into a twin of audit_log
// that has only its primary key; then the twin's secondary indexes are
// built, as a rebuild builds them. No projection code (metadata decoding,
// redaction, subject) and no checkpoint bookkeeping. subject_id stays NULL:
// in the generated events no subject differs from its actor, so the partial
// subject index is empty either way.
func pipeline(ctx context.Context, pool *pgxpool.Pool) error {
	const twin = "audit_log_twin"
	if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+twin+`;
		CREATE TABLE `+twin+` (LIKE audit_log INCLUDING ALL EXCLUDING INDEXES);
		ALTER TABLE `+twin+` ADD PRIMARY KEY (transaction_id, "offset")`); err != nil {
		return err
	}
	var defs []string
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_log' AND indexname <> 'audit_log_pkey'`)
		if err != nil {
			return err
		}
		defs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}); err != nil {
		return err
	}
	batches := make(chan [][]any, 2)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		rows, err := pool.Query(gctx, `SELECT transaction_id, "offset", uuid, metadata->>'actor_id', metadata->>'actor_email',
			event_type, recorded_at, stream_id, payload::text FROM `+eventstore.Table+` ORDER BY transaction_id, "offset"`)
		if err != nil {
			return err
		}
		defer rows.Close()
		batch := make([][]any, 0, pipelineBatch)
		for rows.Next() {
			var xid uint64
			var off int64
			var id, typ, stream string
			var actor, email *string
			var at time.Time
			var data []byte
			if err := rows.Scan(&xid, &off, &id, &actor, &email, &typ, &at, &stream, &data); err != nil {
				return err
			}
			batch = append(batch, []any{xid, off, id, actor, email, nil, typ, at, stream, data})
			if len(batch) == pipelineBatch {
				select {
				case batches <- batch:
				case <-gctx.Done():
					return gctx.Err()
				}
				batch = make([][]any, 0, pipelineBatch)
			}
		}
		if err := rows.Err(); err != nil || len(batch) == 0 {
			return err
		}
		select {
		case batches <- batch:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	})
	g.Go(func() error {
		for b := range batches {
			if err := pgx.BeginFunc(gctx, pool, func(tx pgx.Tx) error {
				_, err := tx.CopyFrom(gctx, pgx.Identifier{twin}, []string{"transaction_id", "offset", "event_id", "actor_id",
					"actor_email", "subject_id", "event_type", "recorded_at", "stream_id", "data"}, pgx.CopyFromRows(b))
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	for _, d := range defs {
		d = strings.Replace(strings.Replace(d, " ON public.audit_log ", " ON public."+twin+" ", 1), "INDEX audit_log_", "INDEX twin_audit_log_", 1)
		if _, err := pool.Exec(ctx, d); err != nil {
			return err
		}
	}
	_, err := pool.Exec(ctx, `DROP TABLE `+twin)
	return err
}

func timeHTTP(store *eventstore.Store, actors, requests int) error {
	pool := store.Pool()
	reader := projections.NewAuditLogReader(pool)
	asActor := func(next http.Handler) http.Handler { // stands in for the auth middleware
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := app.Caller{UserID: r.Header.Get("X-Actor"), Role: domain.RoleOperator}
			next.ServeHTTP(w, r.WithContext(app.WithCaller(r.Context(), c)))
		})
	}
	h := porthttp.NewHandler(porthttp.Options{Version: "bench", Health: pool, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))},
		porthttp.AuditRoutes(porthttp.AuditQueries{Mine: app.NewListMyAuditHandler(reader), All: app.NewListAuditHandler(reader, postgres.NewUsers(store, 0))}, asActor, asActor))
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path, actor string) (time.Duration, int, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("X-Actor", actor)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor *string           `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("%s: status %d", path, resp.StatusCode)
		}
		return time.Since(start), len(page.Events), err
	}
	for i := range 50 { // warm up connections and caches
		if _, _, err := get("/ops/audit/me?limit=100", eventgen.ActorID(i%actors)); err != nil {
			return err
		}
	}
	var lat []time.Duration
	for i := range requests {
		d, n, err := get("/ops/audit/me?limit=100", eventgen.ActorID(mrand.IntN(actors)))
		if err != nil {
			return err
		}
		if n != 100 && i == 0 {
			return fmt.Errorf("a page had %d events", n)
		}
		lat = append(lat, d)
	}
	fmt.Printf("GET /ops/audit/me?limit=100 (%d requests, random user of %d)\n  %s\n\n", requests, actors, benchcpu.Percentiles(lat))
	return nil
}

func measureLag(ctx context.Context, pool *pgxpool.Pool, store *eventstore.Store, d time.Duration, rate int) error {
	var after eventstore.Position // the poll starts at the read model's end, not at its millionth-row beginning
	if err := pool.QueryRow(ctx, `SELECT transaction_id, "offset" FROM audit_log ORDER BY transaction_id DESC, "offset" DESC LIMIT 1`).
		Scan(&after.TransactionID, &after.Offset); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	live := projections.All()
	var names []string
	for _, p := range live {
		names = append(names, p.Name())
	}
	wg.Go(func() {
		projections.NewRunner(pool, store, live).Run(runCtx)
	})
	defer func() { stop(); wg.Wait() }()
	// The projections the read-side cases did not rebuild start from zero:
	// the lag is measured once every one is live, not during their catch-up
	// (which is timed here instead: the live runner's own throughput).
	caughtUp, err := waitLive(ctx, pool, live)
	if err != nil {
		return err
	}
	fmt.Printf("live runner caught up (%s) in %s\n", strings.Join(names, " + "), caughtUp.Round(time.Millisecond))

	var mu sync.Mutex
	committed := map[string]time.Time{}
	appendErr := make(chan error, 1)
	appendCtx, stopAppends := context.WithTimeout(ctx, d)
	defer stopAppends()
	go func() {
		defer close(appendErr)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; appendCtx.Err() == nil; i++ {
			<-tick.C
			// A well-formed prepare: every projection, daily_risk_compare too, applies it.
			b, _ := json.Marshal(domain.ExecutionPrepared{ExecutionID: fmt.Sprint("lag-", i), UserID: eventgen.ActorID(i % 10),
				Exchange: "BINANCE", Symbol: "BTCUSDT", Side: "BUY", OrderType: "MARKET", Qty: "0.01", ReferencePrice: "60000",
				Notional: "600", Profile: domain.RiskProfileModel2, Decision: domain.DecisionAccepted, FailedChecks: []string{},
				Day: domain.UTCDay(time.Now()), Shadow: domain.ShadowDecision{Profile: domain.RiskProfileLoose,
					Decision: domain.DecisionAccepted, FailedChecks: []string{}}})
			res, err := store.Append(ctx, fmt.Sprintf("execution-lag-%d", i%50), eventstore.Any,
				eventstore.Metadata{ActorID: eventgen.ActorID(i % 10)}, eventstore.NewEvent{Type: "execution.prepare", SchemaVersion: 1, Data: b})
			if err != nil {
				appendErr <- err
				return
			}
			mu.Lock()
			committed[res.IDs[0]] = time.Now()
			mu.Unlock()
		}
	}()
	var lags []time.Duration
	seen := map[string]bool{}
	pending := func() int { mu.Lock(); defer mu.Unlock(); return len(committed) - len(seen) }
	for deadline := time.Now().Add(d + 10*time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		rows, err := pool.Query(ctx, `SELECT transaction_id, "offset", event_id FROM audit_log
			WHERE (transaction_id, "offset") > ($1, $2) ORDER BY transaction_id, "offset"`, after.TransactionID, after.Offset)
		if err != nil {
			return err
		}
		now := time.Now()
		var id string
		_, err = pgx.ForEachRow(rows, []any{&after.TransactionID, &after.Offset, &id}, func() error {
			mu.Lock()
			defer mu.Unlock()
			if at, ok := committed[id]; ok && !seen[id] {
				seen[id] = true
				lags = append(lags, now.Sub(at))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if appendCtx.Err() != nil && pending() == 0 {
			break
		}
	}
	if err := <-appendErr; err != nil {
		return err
	}
	if pending() != 0 {
		return fmt.Errorf("%d appended events never reached audit_log", pending())
	}
	fmt.Printf("live lag, Store.Append at %d/s for %s → row in audit_log (%d events; runner: %s; head polled every 10ms, 50ms after a wake-up)\n  %s\n",
		rate, d, len(lags), strings.Join(names, " + "), benchcpu.Percentiles(lags))
	return nil
}

// waitLive polls the projections' status until every one is live, and
// says how long that took.
func waitLive(ctx context.Context, pool *pgxpool.Pool, ps []projections.Projection) (time.Duration, error) {
	start := time.Now()
	for {
		st, err := projections.ReadStatus(ctx, pool, ps)
		if err != nil {
			return 0, err
		}
		live := true
		for _, s := range st {
			if s.State == "failing" || s.State == "stale" {
				return 0, fmt.Errorf("projection %s is %s: %s", s.Name, s.State, s.LastError)
			}
			live = live && s.State == "live"
		}
		if live {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// scratchDB creates a migrated database on the test server.
func scratchDB(ctx context.Context) (string, func(), error) {
	admin, err := pgx.Connect(ctx, testdb.AdminURL())
	if err != nil {
		return "", nil, err
	}
	defer admin.Close(ctx)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "bench_projections_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	cfg, err := pgx.ParseConfig(testdb.AdminURL())
	if err != nil {
		return "", nil, err
	}
	cfg.Database = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", nil, err
	}
	if _, err := migrations.Apply(ctx, conn); err != nil {
		return "", nil, err
	}
	conn.Close(ctx)
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		url = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	return url, func() {
		c, err := pgx.Connect(context.Background(), testdb.AdminURL())
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}, nil
}

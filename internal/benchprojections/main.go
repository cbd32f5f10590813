// Command benchprojections measures the projections on a real PostgreSQL:
//
//  1. rebuild of audit_log over N events (default 1M), as events/s and as a
//     ratio to a plain SELECT scan of the same rows in the same run;
//  2. GET /ops/audit/me?limit=100 latency against the handler (httptest)
//     with those N events in the store;
//  3. live lag: events appended through Store.Append at 200/s for 10 s,
//     time until each is in audit_log, with the live runner running every
//     projection (projections.All()).
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
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
	"github.com/tradeops/tradeops/migrations"
	porthttp "github.com/tradeops/tradeops/ports/http"
	"github.com/tradeops/tradeops/projections"
)

func main() {
	events := flag.Int("events", 1_000_000, "events in the store")
	actors := flag.Int("actors", 1000, "users the events are spread over")
	requests := flag.Int("requests", 2000, "GET /ops/audit/me requests to time")
	lagFor := flag.Duration("lag-for", 10*time.Second, "how long to append at --rate for the live lag")
	rate := flag.Int("rate", 200, "appends per second for the live lag")
	keep := flag.Bool("keep", false, "keep the scratch database")
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

	// 1. Rebuild vs a plain scan of the same rows.
	scan, err := timeScan(ctx, pool)
	if err != nil {
		return err
	}
	keyset, err := timeKeysetReads(ctx, store)
	if err != nil {
		return err
	}
	start = time.Now()
	if _, err := projections.Rebuild(ctx, pool, store, projections.AuditLog{}, projections.RebuildOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		return err
	}
	rebuild := time.Since(start)
	start = time.Now()
	record := app.NewRecordResealHandler(postgres.NewEvents(store))
	if _, err := projections.Reseal(app.WithCaller(ctx, app.Caller{Email: "bench"}), pool, store, record, "bench", projections.RebuildOptions{}); err != nil {
		return err
	}
	reseal := time.Since(start)
	start = time.Now()
	rep, err := projections.Verify(ctx, pool, nil)
	if err != nil || rep.Break != nil {
		return fmt.Errorf("verify: %v %v", err, rep.Break)
	}
	verify := time.Since(start)
	perSec := func(d time.Duration) float64 { return float64(events) / d.Seconds() }
	fmt.Printf("rebuild (%d events)                         time      events/s   vs plain scan\n", events)
	fmt.Printf("  plain SELECT scan of the rows             %-9s %9.0f   1.00\n", scan.Round(time.Millisecond), perSec(scan))
	fmt.Printf("  keyset reads, 10000/batch (Store.Read)    %-9s %9.0f   %.2f\n", keyset.Round(time.Millisecond), perSec(keyset), scan.Seconds()/keyset.Seconds())
	fmt.Printf("  projections rebuild audit_log             %-9s %9.0f   %.2f\n", rebuild.Round(time.Millisecond), perSec(rebuild), scan.Seconds()/rebuild.Seconds())
	fmt.Printf("  projections rebuild audit_seal --reseal   %-9s %9.0f   %.2f\n", reseal.Round(time.Millisecond), perSec(reseal), scan.Seconds()/reseal.Seconds())
	fmt.Printf("  audit verify                              %-9s %9.0f   %.2f\n\n", verify.Round(time.Millisecond), perSec(verify), scan.Seconds()/verify.Seconds())

	// 2. The audit endpoint over the full read model.
	if err := timeHTTP(store, actors, requests); err != nil {
		return err
	}

	// 3. Live lag under appends.
	return measureLag(ctx, pool, store, lagFor, rate)
}

// timeScan reads every row the rebuild reads, in one plain SELECT.
func timeScan(ctx context.Context, pool *pgxpool.Pool) (time.Duration, error) {
	start := time.Now()
	rows, err := pool.Query(ctx, `SELECT "offset", transaction_id, uuid, stream_id, stream_version, event_type, schema_version,
		payload::text, metadata::text, recorded_at FROM `+eventstore.Table)
	if err != nil {
		return 0, err
	}
	var n int
	for rows.Next() {
		n++
	}
	rows.Close()
	return time.Since(start), rows.Err()
}

func timeKeysetReads(ctx context.Context, store *eventstore.Store) (time.Duration, error) {
	start := time.Now()
	for after := eventstore.Start; ; {
		evs, err := store.Read(ctx, after, 10_000, eventstore.Filter{})
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			return time.Since(start), nil
		}
		after = evs[len(evs)-1].Position
	}
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
	fmt.Printf("GET /ops/audit/me?limit=100 (%d requests, random user of %d)\n  %s\n\n", requests, actors, percentiles(lat))
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
	fmt.Printf("live lag, Store.Append at %d/s for %s → row in audit_log (%d events; runner: %s, 10ms poll)\n  %s\n",
		rate, d, len(lags), strings.Join(names, " + "), percentiles(lags))
	return nil
}

func percentiles(d []time.Duration) string {
	slices.Sort(d)
	p := func(q float64) time.Duration {
		return d[int(math.Ceil(q*float64(len(d))))-1].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %s   p90 %s   p99 %s   max %s", p(.5), p(.9), p(.99), d[len(d)-1].Round(10*time.Microsecond))
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

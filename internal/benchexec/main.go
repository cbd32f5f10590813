// Command benchexec measures the execution endpoints (issue #9, "Speed")
// against the built server: `tradeops serve` runs as a subprocess, so the
// peak RSS reported is the server's own, on loopback, with a fake Binance
// in this process and the IBKR simulator. The load generator runs on the
// same machine.
//
//  1. prepare, Binance test-order and IBKR test-order, each at a fixed rate
//     (default 100 requests/s for 10 s), open loop: p50/p99 latency;
//  2. prepare at saturation (closed loop, --workers concurrent requests)
//     for --saturate: requests/s and latency;
//  3. the server's peak RSS (VmHWM from /proc) at the end;
//  4. database round trips and transactions per request: a second server,
//     without projections, connected through a counting proxy
//     (roundtrips.go), sent --roundtrips requests of each kind one at a time.
//
// Every phase also reports the CPU it cost per request: the tradeops
// process, the PostgreSQL backends of the scratch database, and this
// process (load generator, fake Binance, baseline client). -cpuprofile FILE
// runs the server with --pprof and writes its CPU profile of the saturated
// prepare phase to FILE (go tool pprof -top FILE).
//
// Each phase is paired with a baseline run from this process in the same
// conditions: the prepare's writes in plain SQL through pgx (lock-or-create
// a usage row, insert a ~700-byte row into a copy of the event table with
// its indexes, update the usage row, commit), without HTTP, JSON, risk
// checks or projections; for the test orders, that transaction, the signed
// order/test to the fake Binance through the adapter's client, and a second
// durable commit (the floor: a test order must be decided durably before it
// is sent). On a shared machine the absolute figures move with the
// neighbours' load; the ratio to the baseline and the CPU per request are
// the stable part. -projections off runs the server without its
// projections, to see their share.
//
// The goals: prepare p99 ≤ 10 ms and test-order p99 ≤ 25 ms at 100/s;
// ≥ 1,500 prepares/s at saturation; peak RSS ≤ 100 MiB.
//
// Run it with `make bench`, or `go run ./internal/benchexec -bin
// bin/tradeops` after `make build` (DATABASE_URL or TEST_DATABASE_URL names
// the server; a scratch database is created and dropped). Orders are spread
// over --users operators (model2, 50 accepted orders a day each) so that
// the accepted path, which writes the daily usage, is what is measured.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tradeops/tradeops/adapters/argon2id"
	"github.com/tradeops/tradeops/adapters/binance"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/fakebinance"
	"github.com/tradeops/tradeops/internal/testdb"
)

type options struct {
	bin            string
	rate           int
	each, saturate time.Duration
	workers, users int
	roundTrips     int
	keep           bool
	cpuProfile     string
	projections    string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/tradeops", "the tradeops binary to run (make build)")
	flag.IntVar(&o.rate, "rate", 100, "requests per second in the fixed-rate phases")
	flag.DurationVar(&o.each, "for", 10*time.Second, "length of each fixed-rate phase")
	flag.DurationVar(&o.saturate, "saturate", 10*time.Second, "length of the saturation phase")
	flag.IntVar(&o.workers, "workers", 32, "concurrent requests at saturation")
	flag.IntVar(&o.users, "users", 400, "operators the orders are spread over")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch database and the server log")
	flag.IntVar(&o.roundTrips, "roundtrips", 100, "requests of each kind sent one at a time to count database round trips (0: skip)")
	flag.StringVar(&o.projections, "projections", "on", "serve --projections: on, or off to measure without the projections' work per event")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the server's CPU profile of the saturated prepare phase to `FILE` (needs serve --pprof)")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "benchexec:", err)
		os.Exit(1)
	}
}

// operator is a user the load is spread over.
type operator struct{ email, token string }

type bench struct {
	o      options
	base   string
	client *http.Client
	users  []operator
	next   atomic.Int64
	// keyed: requests carry a fresh Idempotency-Key each
	keyed bool
	keys  atomic.Int64
	cpu   *cpuMeter
	// creds is one operator's Binance key, for the baseline's test orders.
	creds binance.Credentials
}

func run(ctx context.Context, o options) error {
	dbURL, drop, err := testdb.CreateDatabase(ctx, "", "bench_exec", true)
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("database:", dbURL)
	} else {
		defer func() { _ = drop() }()
	}
	fake := fakebinance.New(fakebinance.Options{})
	defer fake.Close()

	env := serverEnv(dbURL, fake.URL())
	var pprofAddr string
	if o.cpuProfile != "" {
		pprofAddr = freeAddr()
	}
	server, err := startServer(ctx, o, env, pprofAddr, "--projections="+o.projections)
	if err != nil {
		return err
	}
	defer server.stop()

	b := &bench{o: o, base: server.base, client: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 4 * o.workers, MaxIdleConnsPerHost: 4 * o.workers, IdleConnTimeout: time.Minute,
	}}}
	if err := b.createUsers(ctx, dbURL, fake); err != nil {
		return err
	}
	if b.cpu, err = newCPUMeter(ctx, dbURL, server.cmd.Process.Pid); err != nil {
		return err
	}
	defer b.cpu.close()
	fmt.Printf("benchexec: %s serve (pid %d) on %s; fake Binance; IBKR simulator; %d operators; load generator in this process\n",
		o.bin, server.cmd.Process.Pid, server.base, len(b.users))

	const (
		prepareBody = `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}`
		binanceBody = `{"symbol":"BTCUSDT","side":"BUY","qty":0.01}`
		ibkrBody    = `{"symbol":"AAPL","side":"BUY","qty":1}`
	)
	// Warm up connections, caches (exchangeInfo, ticker) and the pool.
	b.atRate(ctx, "/ops/execution/prepare", prepareBody, 200, time.Second)
	base, err := newBaseline(ctx, dbURL, b, fake.URL())
	if err != nil {
		return err
	}
	defer base.close()

	fmt.Printf("\n%-32s %8s %7s %s\n", "phase", "requests", "errors", "latency; CPU per request: tradeops + postgres backends + this process")
	br := b.measure(ctx, func() *result { return b.paced(ctx, o.rate, o.each, base.tx) })
	fmt.Printf("%-32s %8d %7d %s   (the floor: one durable transaction)\n", fmt.Sprintf("baseline plain SQL %d/s", o.rate), br.n, br.errors, br.summary())
	bo := b.measure(ctx, func() *result { return b.paced(ctx, o.rate, o.each, base.testOrder) })
	fmt.Printf("%-32s %8d %7d %s   (the floor of a test order: the above, the fake's order/test, a second durable commit)\n",
		fmt.Sprintf("baseline test order %d/s", o.rate), bo.n, bo.errors, bo.summary())
	for _, p := range []struct {
		name, path, body, goal string
		keyed                  bool
	}{
		{"prepare", "/ops/execution/prepare", prepareBody, "goal p99 ≤ 10 ms", false},
		{"prepare + Idempotency-Key", "/ops/execution/prepare", prepareBody, "goal p99 ≤ 10 ms", true},
		{"binance test-order (fake)", "/ops/execution/binance/test-order", binanceBody, "goal p99 ≤ 25 ms", false},
		{"ibkr test-order (simulator)", "/ops/execution/ibkr/test-order", ibkrBody, "goal p99 ≤ 25 ms", false},
	} {
		b.keyed = p.keyed
		r := b.measure(ctx, func() *result { return b.atRate(ctx, p.path, p.body, o.rate, o.each) })
		fmt.Printf("%-32s %8d %7d %s   (%s)\n", fmt.Sprintf("%s %d/s", p.name, o.rate), r.n, r.errors, r.summary(), p.goal)
	}
	b.keyed = false
	var profile chan error
	if o.cpuProfile != "" {
		profile = make(chan error, 1)
		go func() { profile <- fetchProfile(pprofAddr, o.saturate, o.cpuProfile) }()
	}
	r := b.measure(ctx, func() *result { return b.saturate(ctx, b.post("/ops/execution/prepare", prepareBody)) })
	fmt.Printf("%-32s %8d %7d %s\n", fmt.Sprintf("prepare saturated, %d workers", o.workers), r.n, r.errors, r.summary())
	accepted, err := acceptedOrders(ctx, dbURL)
	if err != nil {
		return err
	}
	if profile != nil {
		if err := <-profile; err != nil {
			return err
		}
		fmt.Println("server CPU profile of the saturated prepares:", o.cpuProfile)
	}
	bs := b.measure(ctx, func() *result { return b.saturate(ctx, base.tx) })
	fmt.Printf("%-32s %8d %7d %s\n", fmt.Sprintf("baseline saturated, %d workers", o.workers), bs.n, bs.errors, bs.summary())
	fmt.Printf("prepare throughput: %.0f requests/s over %s (goal ≥ 1,500/s); baseline %.0f/s; ratio %.2f\n",
		r.rate(), r.elapsed.Round(time.Millisecond), bs.rate(), r.rate()/bs.rate())
	fmt.Printf("accepted prepares at saturation: %d of %d (each writes the daily usage row; the usage is reset before each phase)\n", accepted, r.n)
	hwm, err := peakRSS(server.cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("server peak RSS (VmHWM): %.1f MiB (goal ≤ 100 MiB)\n", float64(hwm)/1024)
	if o.keep {
		fmt.Println("server log:", server.logPath)
	} else {
		server.removeLog = true
	}
	server.stop()
	if o.roundTrips > 0 {
		return b.countRoundTrips(ctx, env, dbURL, []roundTripCase{
			{"prepare", "/ops/execution/prepare", prepareBody, false},
			{"prepare + Idempotency-Key", "/ops/execution/prepare", prepareBody, true},
			{"binance test-order", "/ops/execution/binance/test-order", binanceBody, false},
			{"binance test-order + Idempotency-Key", "/ops/execution/binance/test-order", binanceBody, true},
			{"ibkr test-order", "/ops/execution/ibkr/test-order", ibkrBody, false},
		})
	}
	return nil
}

// countOnce sends c n times, one at a time, as the users next gives, and
// returns the round trips, transactions and writing transactions per
// request the proxy counted.
func (b *bench) countOnce(proxy *pgCounter, n int, next func() operator, c roundTripCase) (string, int) {
	before := proxy.counts()
	errs := 0
	for range n {
		if status, _, err := b.do(http.MethodPost, c.path, next().token, c.body); err != nil || status != http.StatusOK {
			errs++
		}
	}
	after := proxy.counts()
	per := func(i int) float64 { return float64(after[i]-before[i]) / float64(n) }
	return fmt.Sprintf("%.2f / %.2f / %.2f", per(0), per(1), per(2)), errs
}

// roundTripCase is a request whose database round trips are counted.
type roundTripCase struct {
	name, path, body string
	keyed            bool
}

// countRoundTrips starts a second server (no projections, which poll the
// database on their own) through a counting proxy and sends each case
// o.roundTrips times, one at a time, after a warm-up that fills the
// connections' statement caches.
func (b *bench) countRoundTrips(ctx context.Context, env []string, dbURL string, cases []roundTripCase) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	proxy := &pgCounter{}
	ln, err := testdb.Listen(u.Host, proxy.read)
	if err != nil {
		return err
	}
	defer ln.Close()
	u.Host = ln.Addr()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	env = append(env, "DATABASE_URL="+u.String()) // the later value wins
	server, err := startServer(ctx, b.o, env, "", "--projections=off")
	if err != nil {
		return err
	}
	defer server.stop()
	server.removeLog = !b.o.keep
	b.base = server.base
	fmt.Printf("\nround trips / transactions / writing transactions per request, one at a time:\n")
	fmt.Printf("%-38s %-24s %s\n", "", "a user's first request", "a user's later requests")
	fresh := 0 // users this server has not seen yet
	for i, c := range cases {
		b.keyed = c.keyed
		// Warm-up: the pool's connections prepare their statements.
		for range 20 {
			_, _, _ = b.do(http.MethodPost, c.path, b.users[i].token, c.body)
		}
		// First requests: each from a user this server has not seen (no
		// cached access state, no remembered execution state).
		n := max(1, min(b.o.roundTrips, (len(b.users)-fresh)/len(cases)))
		first, errs := b.countOnce(proxy, n, func() operator { fresh++; return b.users[len(b.users)-fresh] }, c)
		// Later requests: one user, again and again, within model2's 50
		// accepted orders a day (a rejected test order is not sent).
		u := b.users[i]
		if _, err := b.cpu.pool.Exec(ctx, `UPDATE execution_daily_usage SET orders = 0, notional = 0`); err != nil {
			return err
		}
		for range 3 {
			_, _, _ = b.do(http.MethodPost, c.path, u.token, c.body)
		}
		later, errs2 := b.countOnce(proxy, min(b.o.roundTrips, 40), func() operator { return u }, c)
		note := ""
		if errs+errs2 > 0 {
			note = fmt.Sprintf("   (%d not 200)", errs+errs2)
		}
		fmt.Printf("%-38s %-24s %s%s\n", c.name, first, later, note)
	}
	return nil
}

// server is the tradeops serve subprocess.
type server struct {
	cmd     *exec.Cmd
	base    string
	logPath string
	logFile *os.File
	// removeLog: the run went well and the log is not to be kept.
	removeLog bool
	stopped   bool
}

// serverEnv is the servers' environment: both servers of a run share the
// keys, so the tokens and stored secrets work on either.
func serverEnv(dbURL, binanceURL string) []string {
	return slices.Clip(append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"SECRET_KEY="+randomKey(),
		"ENCRYPTION_KEY="+randomKey(),
		"BINANCE_TESTNET_BASE_URL="+binanceURL,
		"IBKR_BRIDGE_BASE_URL=",
		"LOG_LEVEL=info",
	))
}

// freeAddr is a loopback address nobody listens on just now.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServer(ctx context.Context, o options, env []string, pprofAddr string, args ...string) (*server, error) {
	addr := freeAddr()
	logFile, err := os.CreateTemp("", "benchexec-serve-*.log")
	if err != nil {
		return nil, err
	}
	args = append([]string{"serve"}, args...)
	if pprofAddr != "" {
		args = append(args, "--pprof", pprofAddr)
	}
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Env = append(env, "LISTEN_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build first)", o.bin, err)
	}
	s := &server{cmd: cmd, base: "http://" + addr, logPath: logFile.Name(), logFile: logFile}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the server did not become ready; its log: %s", s.logPath)
		}
	}
}

func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
	}
	s.logFile.Close()
	if s.removeLog {
		_ = os.Remove(s.logPath)
	}
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// createUsers creates the operators directly through the app with a cheap
// password hash (the benchmark is not about logins), logs each in through
// the API, and stores a Binance key (registered with the fake) for each.
func (b *bench) createUsers(ctx context.Context, dbURL string, fake *fakebinance.Server) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	create := app.NewCreateUserHandler(postgres.NewUsers(eventstore.New(pool), 0),
		argon2id.New(argon2id.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0))
	ctx = app.WithCaller(ctx, app.Caller{Email: "benchexec", RequestID: "benchexec"})
	const password = "benchexec password, not a secret"
	b.users = make([]operator, b.o.users)
	errs := make(chan error, b.o.users)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range b.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			email := fmt.Sprintf("op%04d@bench.test", i)
			if _, err := create.Handle(ctx, app.CreateUser{Email: email, Role: "operator", Password: domain.NewSecret(password)}); err != nil {
				errs <- err
				return
			}
			token, err := b.login(email, password)
			if err != nil {
				errs <- err
				return
			}
			key, sec := alnum(64), alnum(64)
			fake.AddHMACKey(key, sec)
			status, body, err := b.do(http.MethodPut, "/users/exchange-secrets/BINANCE", token, fmt.Sprintf(`{"api_key":%q,"api_secret":%q}`, key, sec))
			if err != nil || status != http.StatusOK {
				errs <- fmt.Errorf("store a key: %d %s %v", status, body, err)
				return
			}
			b.users[i] = operator{email: email, token: token}
			if i == 0 {
				b.creds = binance.Credentials{APIKey: domain.NewSecret(key), Secret: domain.NewSecret(sec)}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (b *bench) login(email, password string) (string, error) {
	resp, err := b.client.PostForm(b.base+"/auth/login", url.Values{"username": {email}, "password": {password}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("login %s: %d %v", email, resp.StatusCode, err)
	}
	return out.AccessToken, nil
}

// do sends one request and reads the whole answer.
func (b *bench) do(method, path, token, body string) (int, string, error) {
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if b.keyed && method == http.MethodPost {
		req.Header.Set("Idempotency-Key", fmt.Sprintf("benchexec-%d", b.keys.Add(1)))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), err
}

// result is one phase's outcome.
type result struct {
	n, errors int
	lat       []time.Duration
	elapsed   time.Duration
	firstErr  string
	cpu       cpuUsage
}

func (r *result) add(d time.Duration, status int, body string, err error) {
	r.n++
	r.lat = append(r.lat, d)
	if err != nil || status != http.StatusOK {
		r.errors++
		if r.firstErr == "" {
			r.firstErr = fmt.Sprintf("%d %s %v", status, strings.TrimSpace(body), err)
		}
	}
}

func (r *result) percentiles() string {
	if len(r.lat) == 0 {
		return "-"
	}
	slices.Sort(r.lat)
	p := func(q float64) time.Duration {
		return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))].Round(10 * time.Microsecond)
	}
	s := fmt.Sprintf("p50 %-9s p99 %-9s max %s", p(.5), p(.99), r.lat[len(r.lat)-1].Round(10*time.Microsecond))
	if r.firstErr != "" {
		s += "   first error: " + r.firstErr
	}
	return s
}

// user is the next operator, round robin.
func (b *bench) user() operator {
	return b.users[int(b.next.Add(1))%len(b.users)]
}

// request is one timed unit of load: its status and body (for errors).
type request func() (int, string, error)

// post is a request to path with body, as the next operator.
func (b *bench) post(path, body string) request {
	return func() (int, string, error) { return b.do(http.MethodPost, path, b.user().token, body) }
}

// atRate issues rate requests a second to path for d.
func (b *bench) atRate(ctx context.Context, path, body string, rate int, d time.Duration) *result {
	return b.paced(ctx, rate, d, b.post(path, body))
}

// paced issues rate requests a second for d, each at its scheduled time
// whatever the previous ones are doing (open loop), so a slow answer does
// not slow the load down and hide itself.
func (b *bench) paced(ctx context.Context, rate int, d time.Duration, req request) *result {
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	r := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			status, raw, err := req()
			el := time.Since(t0)
			mu.Lock()
			r.add(el, status, raw, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// saturate keeps o.workers requests in flight for o.saturate.
func (b *bench) saturate(ctx context.Context, req request) *result {
	r := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(b.o.saturate)
	for range b.o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				status, raw, err := req()
				el := time.Since(t0)
				mu.Lock()
				r.add(el, status, raw, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// summary is the percentiles and the CPU per request.
func (r *result) summary() string {
	return r.percentiles() + "   " + r.cpu.per(r.n)
}

func (r *result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// baseline is the prepare's writes in plain SQL, on scratch copies of the
// tables (with their indexes) that no projection reads.
type baseline struct {
	pool    *pgxpool.Pool
	users   []string
	next    atomic.Int64
	payload []byte
	binance *binance.Client
	creds   binance.Credentials
}

func newBaseline(ctx context.Context, dbURL string, b *bench, binanceURL string) (*baseline, error) {
	client, err := binance.New(binance.Config{BaseURL: binanceURL})
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 20 // as the server's pool
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_events (LIKE watermill_events INCLUDING ALL);
		CREATE TABLE bench_usage (LIKE execution_daily_usage INCLUDING ALL)`); err != nil {
		pool.Close()
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT id::text FROM users`)
	if err != nil {
		pool.Close()
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		pool.Close()
		return nil, err
	}
	// A prepare event's payload, as stored.
	var payload string
	if err := pool.QueryRow(ctx, `SELECT payload::text FROM watermill_events WHERE event_type = 'execution.prepare' LIMIT 1`).Scan(&payload); err != nil {
		pool.Close()
		return nil, err
	}
	return &baseline{pool: pool, users: ids, payload: []byte(payload), binance: client, creds: b.creds}, nil
}

func (bl *baseline) close() { bl.pool.Close() }

// tx is one baseline transaction, written the way Executions.Decide is:
// BEGIN; a batch that creates and locks the usage row; the insert; the
// update; COMMIT.
func (bl *baseline) tx() (int, string, error) {
	ctx := context.Background()
	user := bl.users[int(bl.next.Add(1))%len(bl.users)]
	err := pgx.BeginFunc(ctx, bl.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO bench_usage (user_id, day) VALUES ($1, current_date) ON CONFLICT (user_id, day) DO NOTHING`, user)
		b.Queue(`SELECT orders, notional::text FROM bench_usage WHERE user_id = $1 AND day = current_date FOR UPDATE`, user)
		br := tx.SendBatch(ctx, b)
		var orders int
		var notional string
		_, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&orders, &notional)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO bench_events (uuid, payload, metadata, transaction_id, stream_id, stream_version, event_type, recorded_at)
			VALUES (gen_random_uuid()::text, $1, '{}', pg_current_xact_id(), 'execution-' || gen_random_uuid(), 1, 'execution.prepare', now())`, bl.payload); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE bench_usage SET orders = $2, notional = $3::numeric + 950 WHERE user_id = $1 AND day = current_date`, user, orders+1, notional)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	return http.StatusOK, "", nil
}

// testOrder is a test order's work in plain code: the decision's
// transaction (tx), the signed order/test to the fake Binance through the
// adapter's client, and the outcome appended in a second durable commit.
func (bl *baseline) testOrder() (int, string, error) {
	if status, body, err := bl.tx(); err != nil {
		return status, body, err
	}
	ctx := context.Background()
	if _, err := bl.binance.TestOrder(ctx, bl.creds, binance.Order{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: decimal.RequireFromString("0.01")}); err != nil {
		return 0, "", err
	}
	if _, err := bl.pool.Exec(ctx, `INSERT INTO bench_events (uuid, payload, metadata, transaction_id, stream_id, stream_version, event_type, recorded_at)
		VALUES (gen_random_uuid()::text, '{}', '{}', pg_current_xact_id(), 'execution-' || gen_random_uuid(), 2, 'execution.binance.test_order.success', now())`); err != nil {
		return 0, "", err
	}
	return http.StatusOK, "", nil
}

func acceptedOrders(ctx context.Context, dbURL string) (int, error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	var n int
	err = pool.QueryRow(ctx, `SELECT coalesce(sum(orders), 0) FROM execution_daily_usage`).Scan(&n)
	return n, err
}

// peakRSS reads the process's high-water resident set size in KiB.
func peakRSS(pid int) (int, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w (Linux only)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc/<pid>/status")
}

func alnum(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

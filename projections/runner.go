package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/eventstore"
)

// EventReader is what projections need of the event store: gap-free ordered
// reads on a given transaction — decoded, or in the stored form only — and
// the head of the stream.
type EventReader interface {
	ReadIn(ctx context.Context, q eventstore.Querier, after eventstore.Position, limit int, f eventstore.Filter) ([]eventstore.Event, error)
	ReadStoredIn(ctx context.Context, q eventstore.Querier, after eventstore.Position, limit int) ([]eventstore.Event, error)
	Head(ctx context.Context) (eventstore.Position, error)
}

// storedForm marks a projection that reads only the stored form of events
// (Event.Stored, the ids, positions, types and times): it is fed events
// without decoded metadata or upcast payloads.
type storedForm interface{ storedFormOnly() }

// readBatch reads the next batch p applies, in the form p reads.
func readBatch(ctx context.Context, events EventReader, p Projection, q eventstore.Querier, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	if _, ok := p.(storedForm); ok {
		return events.ReadStoredIn(ctx, q, after, limit)
	}
	return events.ReadIn(ctx, q, after, limit, eventstore.Filter{})
}

// Runner keeps projections up to date with the stream. Each projection runs
// independently: one failing or quarantining never holds up another.
type Runner struct {
	// oneBatch makes the projections' batches take turns. After a wake-up
	// all of them had a batch to apply at once, and four batches with
	// their PostgreSQL backends took both of the API's two cores for a
	// few milliseconds, 20 times a second, from the requests: alternated
	// benchexec runs, prepare p99 at 100/s 6.6–10.3 ms one at a time
	// against 9.5–26 ms all at once, and saturated prepares 1,870–2,260/s
	// against 1,990–2,220/s. A failing projection waits for its retry
	// outside the turn, so it holds up no other; a catch-up of several
	// projections takes the sum of their times rather than the longest.
	oneBatch    sync.Mutex
	pool        *pgxpool.Pool
	events      EventReader
	projections []Projection
	batchSize   int
	poll        time.Duration
	log         *slog.Logger
	metrics     *metrics
}

// RunnerOption configures a Runner.
type RunnerOption func(*Runner)

// WithBatchSize sets the most events applied in one transaction (default 1000).
func WithBatchSize(n int) RunnerOption { return func(r *Runner) { r.batchSize = n } }

// WithPollInterval sets how often the head of the stream is checked for new
// events while it is still (default 10ms); after it moved, the next check
// waits busyPollFactor times as long. Live lag is about these intervals.
func WithPollInterval(d time.Duration) RunnerOption { return func(r *Runner) { r.poll = d } }

// busyPollFactor stretches the head check that follows a wake-up. Each
// wake-up costs every projection a batch transaction (three round trips
// besides Apply's, see stepFast) however few events it carries: at 100 commands/s, waking every 10 ms
// cost the server more CPU in projection batches than in the commands
// themselves (benchexec: 4.4 ms of tradeops CPU per prepare at 100/s, 2.4
// ms with 50 ms between wake-ups). A quiet stream is still noticed within
// one poll — a user's read of their own write after idling is not
// delayed — while a busy one is applied in batches of ~50 ms of events,
// well inside DESIGN's 250 ms p99 lag.
const busyPollFactor = 5

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) RunnerOption { return func(r *Runner) { r.log = l } }

// WithMetrics registers the runner's metrics — lag in events and seconds,
// quarantined events, applied events, batch latency, errors — on reg.
func WithMetrics(reg prometheus.Registerer) RunnerOption {
	return func(r *Runner) { r.metrics = newMetrics(reg) }
}

// NewRunner returns a runner of projections over the events in pool.
func NewRunner(pool *pgxpool.Pool, events EventReader, projections []Projection, opts ...RunnerOption) *Runner {
	r := &Runner{pool: pool, events: events, projections: projections, batchSize: 1000,
		poll: 10 * time.Millisecond, log: slog.Default()}
	for _, o := range opts {
		o(r)
	}
	if r.metrics == nil {
		r.metrics = newMetrics(nil)
	}
	return r
}

// idleRecheck bounds how long a projection sleeps without a wake-up, in case
// the head watcher missed a change (e.g. another replica held the batch).
const idleRecheck = time.Second

// Run applies new events to every projection until ctx ends. Failures are
// logged, counted and retried with backoff, so Run only stops with ctx.
func (r *Runner) Run(ctx context.Context) {
	wakes := make([]chan struct{}, len(r.projections))
	var wg sync.WaitGroup
	for i, p := range r.projections {
		wakes[i] = make(chan struct{}, 1)
		wg.Go(func() { r.loop(ctx, p, wakes[i]) })
	}
	wg.Go(func() { r.watchHead(ctx, wakes) })
	wg.Go(func() { r.refreshGauges(ctx) })
	wg.Wait()
}

// watchHead polls the stream's head — one index probe — and wakes the
// projections when it moves, so idle projections open no transactions.
// After a wake-up it waits longer before the next check (busyPollFactor).
func (r *Runner) watchHead(ctx context.Context, wakes []chan struct{}) {
	t := time.NewTimer(r.poll)
	defer t.Stop()
	var last eventstore.Position
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		head, err := r.events.Head(ctx)
		if err != nil || head == last {
			t.Reset(r.poll)
			continue // a failing database shows in the projections' own errors
		}
		t.Reset(busyPollFactor * r.poll)
		last = head
		for _, w := range wakes {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

func (r *Runner) loop(ctx context.Context, p Projection, wake <-chan struct{}) {
	log := r.log.With("projection", p.Name())
	var backoff time.Duration
	var lastErr string
	created := false
	for ctx.Err() == nil {
		var n int
		var err error
		if !created {
			err = ensureCheckpoint(ctx, r.pool, p)
			created = err == nil
		}
		if created {
			r.oneBatch.Lock()
			n, err = r.step(ctx, p)
			r.oneBatch.Unlock()
		}
		switch {
		case err == nil && n == r.batchSize:
			continue // more is waiting
		case err == nil, errors.Is(err, errBusy):
			backoff, lastErr = 0, ""
			r.sleep(ctx, wake, idleRecheck)
		case ctx.Err() != nil:
			return
		default:
			r.metrics.errors.WithLabelValues(p.Name()).Inc()
			if err.Error() != lastErr { // log a persistent failure once, not every retry
				log.Error("projection failed; retrying", "err", err)
				lastErr = err.Error()
			}
			r.recordError(ctx, p.Name(), err)
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			r.sleep(ctx, nil, backoff)
		}
	}
}

func (r *Runner) sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

// asyncCommit makes a batch's COMMIT return without waiting for the WAL
// flush. A crash may lose the last batches' commits, but a batch's read
// model rows and its checkpoint are one transaction, so they are lost
// together and applied again from the older checkpoint: exactly once holds.
// What it saves is a disk flush per batch and projection (a flush costs ~2
// ms on this machine's disk), which commands' own commits were queueing
// behind.
const asyncCommit = "SET LOCAL synchronous_commit = off"

// step applies the next batch: lock the checkpoint, read after it in the
// same transaction, apply, move the checkpoint, commit. It returns how many
// events it read.
//
// The batch is first applied as a whole, without savepoints (stepFast).
// Only when that fails on the events' data is the transaction rolled back
// and the batch redone by stepCareful, which isolates the poison events in
// savepoints and quarantines them: poison is rare, and the redo reads the
// batch again.
func (r *Runner) step(ctx context.Context, p Projection) (int, error) {
	start := time.Now()
	n, poisoned, err := r.stepFast(ctx, p)
	quarantined := 0
	if poisoned {
		n, quarantined, err = r.stepCareful(ctx, p)
	}
	if err != nil || n == 0 {
		return 0, err
	}
	r.metrics.applied.WithLabelValues(p.Name()).Add(float64(n - quarantined))
	r.metrics.batch.WithLabelValues(p.Name()).Observe(time.Since(start).Seconds())
	return n, nil
}

// stepFast applies the next batch in three round trips besides Apply's own:
// BEGIN, SET LOCAL and the checkpoint's lock pipelined in one; the read;
// the checkpoint's update and COMMIT pipelined in one. The transaction is
// the pooled connection's own (a pgx.Tx would cost BEGIN its round trip).
// When Apply fails on the events' data it rolls back and reports poisoned.
func (r *Runner) stepFast(ctx context.Context, p Projection) (n int, poisoned bool, err error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("projection %s: acquire: %w", p.Name(), err)
	}
	defer conn.Release() // a connection left inside a transaction is closed, not reused
	defer func() {
		if c := conn.Conn().PgConn(); !c.IsClosed() && c.TxStatus() != 'I' {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	cp, err := beginLocked(ctx, conn, p.Name())
	if err != nil {
		return 0, false, err
	}
	if err := cp.checkVersion(p); err != nil {
		return 0, false, err
	}
	events, err := readBatch(ctx, r.events, p, conn, cp.Position, r.batchSize)
	if err != nil || len(events) == 0 {
		return 0, false, err
	}
	if err := p.Apply(ctx, conn, liveTables, events); err != nil {
		if isPoison(ctx, err) {
			return 0, true, nil
		}
		return 0, false, fmt.Errorf("apply %s: %w", p.Name(), err)
	}
	var commit pgx.Batch
	commit.Queue(saveCheckpointSQL, saveCheckpointArgs(p.Name(), p.Version(), events[len(events)-1].Position)...)
	commit.Queue("COMMIT")
	if err := conn.SendBatch(ctx, &commit).Close(); err != nil {
		return 0, false, fmt.Errorf("projection %s: save checkpoint and commit: %w", p.Name(), err)
	}
	return len(events), false, nil
}

// beginLocked begins a transaction on conn and locks name's checkpoint in
// it — BEGIN, SET LOCAL and the lock in one pipelined batch — and returns
// the checkpoint.
func beginLocked(ctx context.Context, conn *pgxpool.Conn, name string) (checkpoint, error) {
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(asyncCommit)
	// SKIP LOCKED: another replica or a rebuild's swap has the batch; wait
	// for the next wake-up instead of holding a connection in a lock queue.
	b.Queue(lockCheckpointSQL(true), name)
	br := conn.SendBatch(ctx, &b)
	_, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err != nil {
		_ = br.Close()
		return checkpoint{}, fmt.Errorf("projection %s: begin: %w", name, err)
	}
	cp, err := scanCheckpoint(br.QueryRow(), name, true)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("projection %s: begin: %w", name, cerr)
	}
	return cp, err
}

// stepCareful applies the next batch with each part in a savepoint,
// quarantining the events that fail on their data (applyBatch). It returns
// how many events it read and how many of them it quarantined.
func (r *Runner) stepCareful(ctx context.Context, p Projection) (n, quarantined int, err error) {
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + asyncCommit})
	if err != nil {
		return 0, 0, fmt.Errorf("projection %s: begin: %w", p.Name(), err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	// SKIP LOCKED, as in beginLocked.
	cp, err := lockCheckpoint(ctx, tx, p.Name(), true)
	if err != nil {
		return 0, 0, err
	}
	if err := cp.checkVersion(p); err != nil {
		return 0, 0, err
	}
	events, err := readBatch(ctx, r.events, p, tx, cp.Position, r.batchSize)
	if err != nil || len(events) == 0 {
		return 0, 0, err
	}
	quarantined, err = applyBatch(ctx, tx, p, liveTables, events, r.log)
	if err != nil {
		return 0, 0, err
	}
	if err := saveCheckpoint(ctx, tx, p.Name(), p.Version(), events[len(events)-1].Position); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("projection %s: commit: %w", p.Name(), err)
	}
	return len(events), quarantined, nil
}

// recordError leaves the failure where `projections status` shows it
// (best effort: the database may be what failed).
func (r *Runner) recordError(ctx context.Context, name string, err error) {
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	_, _ = r.pool.Exec(ctx, `UPDATE projection_checkpoints SET last_error = $2 WHERE name = $1`, name, msg)
}

// refreshGauges updates the lag, quarantine and state gauges every second.
func (r *Runner) refreshGauges(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		statuses, err := ReadStatus(ctx, r.pool, r.projections)
		if err != nil {
			continue
		}
		for _, s := range statuses {
			r.metrics.lagEvents.WithLabelValues(s.Name).Set(float64(s.LagEvents))
			r.metrics.lagSeconds.WithLabelValues(s.Name).Set(s.LagSeconds)
			r.metrics.quarantined.WithLabelValues(s.Name).Set(float64(s.Quarantined))
			r.metrics.setState(s.Name, s.State)
		}
	}
}

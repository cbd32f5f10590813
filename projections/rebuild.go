package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/tradeops/tradeops/eventstore"
)

// RebuildOptions tune a rebuild.
type RebuildOptions struct {
	// BatchSize is the number of events read and copied per transaction
	// (default 10000).
	BatchSize int
	// Progress, when set, is called after every batch and phase change.
	Progress func(RebuildProgress)
	Logger   *slog.Logger
}

// RebuildProgress reports a rebuild's advance.
type RebuildProgress struct {
	Projection string
	// Phase is "copy" (replaying into the shadow), "index" (building the
	// shadow's secondary indexes), "swap" (handing off to the live runner)
	// or "done".
	Phase string
	Done  int64 // events replayed into the shadow so far
	// Total is the stream's size when the rebuild started (for an ETA;
	// events appended meanwhile make Done overtake it).
	Total   int64
	Elapsed time.Duration
}

// ErrSealRebuild refuses to rebuild the seal like any other projection:
// re-sealing the stream as it is now would launder a tampered event. Use
// Reseal.
var ErrSealRebuild = errors.New("audit_seal is never rebuilt like the other projections: re-sealing a tampered stream would launder it; use `projections rebuild audit_seal --reseal`, which first verifies the chain")

// Rebuild replays the whole stream into shadow tables and swaps them in
// while the live runner keeps serving the old ones:
//
//  1. copy: batches of keyset reads, each applied to the shadow with COPY
//     and committed with the rebuild's position in projection_rebuilds (a
//     killed rebuild resumes there); the shadow has only its primary key,
//     secondary indexes are built once at the end, far faster than
//     maintained row by row;
//  2. index: build those indexes, then catch up again;
//  3. swap, in one transaction: lock the live checkpoint row (the live
//     runner skips its batches meanwhile), apply the remaining tail, rename
//     live→old and shadow→live (tables and indexes), set the checkpoint to the
//     shadow's position, commit; then drop the old tables.
//
// The live runner continues from exactly the position the shadow reached: no
// event is lost or applied twice. It returns that position.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, events EventReader, p Projection, opts RebuildOptions) (eventstore.Position, error) {
	if p.Name() == SealName {
		return eventstore.Position{}, ErrSealRebuild
	}
	return rebuild(ctx, pool, events, p, opts)
}

// rebuildLockClass is the first key of the advisory locks that keep two
// rebuilds of one projection from running at once.
const rebuildLockClass = 0x74726264

// swapLockTimeout bounds how long the swap waits for readers of the live
// table; it then rolls back and tries again rather than queue every reader
// behind it.
const swapLockTimeout = "5s"

func rebuild(ctx context.Context, pool *pgxpool.Pool, events EventReader, p Projection, opts RebuildOptions) (eventstore.Position, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 10000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &rebuilder{pool: pool, events: events, p: p, opts: opts, start: time.Now()}
	pos, err := r.run(ctx)
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	return pos, nil
}

func (r *rebuilder) run(ctx context.Context) (eventstore.Position, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return eventstore.Position{}, err
	}
	defer unlock()
	if err := ensureCheckpoint(ctx, r.pool, r.p); err != nil {
		return eventstore.Position{}, err
	}
	if err := r.prepare(ctx); err != nil {
		return eventstore.Position{}, err
	}
	stopCount := sync.OnceFunc(r.countEvents(ctx))
	defer stopCount()
	if r.phase == "copy" {
		if err := r.copy(ctx); err != nil {
			return eventstore.Position{}, err
		}
		if err := r.buildIndexes(ctx); err != nil {
			return eventstore.Position{}, fmt.Errorf("build indexes: %w", err)
		}
	}
	// Catch up on what was appended while indexing, so the swap's tail —
	// applied while the live runner waits — stays small.
	if err := r.copy(ctx); err != nil {
		return eventstore.Position{}, err
	}
	if err := r.swap(ctx); err != nil {
		return eventstore.Position{}, fmt.Errorf("swap: %w", err)
	}
	stopCount() // the last report carries the total
	r.report("done")
	return r.pos, nil
}

// countEvents counts the stream for the progress's ETA beside the copy,
// not before it: a count of a million events took a second of the
// rebuild's time. Until it is in, Total is 0 (no ETA); a failed count only
// costs the ETA. The returned func waits for the count (cancelled if it is
// still running).
func (r *rebuilder) countEvents(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var n int64
		if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM `+eventstore.Table+
			` WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`).Scan(&n); err == nil {
			r.total.Store(n)
		}
	}()
	return func() { cancel(); <-done }
}

// lock takes the projection's rebuild lock, a session advisory lock that
// dies with the process, so a killed rebuild never blocks the next one.
func (r *rebuilder) lock(ctx context.Context) (unlock func(), err error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, rebuildLockClass, r.p.Name()).Scan(&locked); err != nil || !locked {
		conn.Release()
		if err == nil {
			err = errors.New("another rebuild of it is running")
		}
		return nil, err
	}
	return func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext($2))`, rebuildLockClass, r.p.Name())
		conn.Release()
	}, nil
}

type rebuilder struct {
	pool   *pgxpool.Pool
	events EventReader
	p      Projection
	opts   RebuildOptions
	start  time.Time
	total  atomic.Int64 // the stream's size at the start, for the ETA
	// the shadow's state, as committed in projection_rebuilds
	pos   eventstore.Position
	done  int64
	phase string
}

func (r *rebuilder) report(phase string) {
	if r.opts.Progress != nil {
		r.opts.Progress(RebuildProgress{Projection: r.p.Name(), Phase: phase, Done: r.done, Total: r.total.Load(), Elapsed: time.Since(r.start)})
	}
}

// prepare resumes the rebuild a killed process left, or starts afresh:
// empty shadow tables with the live tables' columns and constraints, and a
// rebuild row at the start of the stream, created in one transaction.
func (r *rebuilder) prepare(ctx context.Context) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		for _, t := range r.p.Tables() {
			// Left by a rebuild killed right after its swap committed.
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{t + oldSuffix}.Sanitize()); err != nil {
				return err
			}
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version, transaction_id, "offset", events_done, phase FROM projection_rebuilds WHERE name = $1 FOR UPDATE`,
			r.p.Name()).Scan(&version, &r.pos.TransactionID, &r.pos.Offset, &r.done, &r.phase)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case version == r.p.Version():
			ok, err := shadowsExist(ctx, tx, r.p)
			if err != nil || ok {
				r.opts.Logger.Info("rebuild: resuming", "projection", r.p.Name(), "position", r.pos.String(), "events_done", r.done, "phase", r.phase)
				return err
			}
		}
		r.pos, r.done, r.phase = eventstore.Start, 0, "copy"
		if _, err := tx.Exec(ctx, `DELETE FROM projection_quarantine WHERE projection = $1 AND shadow`, r.p.Name()); err != nil {
			return err
		}
		for _, t := range r.p.Tables() {
			if err := createShadow(ctx, tx, t); err != nil {
				return fmt.Errorf("shadow of %s: %w", t, err)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO projection_rebuilds (name, version) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET version = excluded.version, transaction_id = '0', "offset" = 0,
				events_done = 0, phase = 'copy', started_at = now(), updated_at = now()`, r.p.Name(), r.p.Version())
		return err
	})
}

func shadowsExist(ctx context.Context, tx pgx.Tx, p Projection) (bool, error) {
	for _, t := range p.Tables() {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, shadowTables.Of(t).Sanitize()).Scan(&exists); err != nil || !exists {
			return false, err
		}
	}
	return true, nil
}

// createShadow creates table's shadow: same columns, defaults and checks,
// and its primary key and unique constraints (they guard the copy), but none
// of its other indexes yet.
func createShadow(ctx context.Context, tx pgx.Tx, table string) error {
	live, shadow := liveTables.Of(table).Sanitize(), shadowTables.Of(table).Sanitize()
	if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+shadow); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE `+shadow+` (LIKE `+live+` INCLUDING ALL EXCLUDING INDEXES)`); err != nil {
		return err
	}
	idx, err := listIndexes(ctx, tx, table)
	if err != nil {
		return err
	}
	for _, i := range idx {
		if i.constraintDef != "" {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+shadow+` ADD CONSTRAINT `+pgx.Identifier{i.name + shadowSuffix}.Sanitize()+` `+i.constraintDef); err != nil {
				return err
			}
		}
	}
	return nil
}

// index is one index of a live table.
type index struct {
	name          string
	def           string // CREATE INDEX ...
	constraintDef string // PRIMARY KEY (...) / UNIQUE (...), when a constraint owns the index
}

func listIndexes(ctx context.Context, q eventstore.Querier, table string) ([]index, error) {
	rows, err := q.Query(ctx, `SELECT ic.relname, pg_get_indexdef(i.indexrelid), coalesce(pg_get_constraintdef(c.oid), '')
		FROM pg_index i
		JOIN pg_class ic ON ic.oid = i.indexrelid
		LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')
		WHERE i.indrelid = $1::regclass
		ORDER BY ic.relname`, liveTables.Of(table).Sanitize())
	if err != nil {
		return nil, fmt.Errorf("indexes of %s: %w", table, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (index, error) {
		var i index
		err := row.Scan(&i.name, &i.def, &i.constraintDef)
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("indexes of %s: %w", table, err)
	}
	for _, i := range out {
		if len(i.name)+len(shadowSuffix) > 63 {
			return nil, fmt.Errorf("index %s: name too long for its shadow (%s)", i.name, i.name+shadowSuffix)
		}
	}
	return out, nil
}

// indexDef splits pg_get_indexdef's output around the index and table names.
var indexDef = regexp.MustCompile(`^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .*)$`)

// buildIndexes creates the shadow's secondary indexes, named like the live
// ones plus the shadow suffix. IF NOT EXISTS lets a resumed rebuild skip the
// ones already built (an interrupted CREATE INDEX rolls back entirely).
func (r *rebuilder) buildIndexes(ctx context.Context) error {
	r.report("index")
	for _, t := range r.p.Tables() {
		idx, err := listIndexes(ctx, r.pool, t)
		if err != nil {
			return err
		}
		for _, i := range idx {
			if i.constraintDef != "" {
				continue
			}
			m := indexDef.FindStringSubmatch(i.def)
			if m == nil {
				return fmt.Errorf("index %s: unexpected definition %q", i.name, i.def)
			}
			ddl := `CREATE ` + m[1] + `INDEX IF NOT EXISTS ` + pgx.Identifier{i.name + shadowSuffix}.Sanitize() +
				` ON ` + shadowTables.Of(t).Sanitize() + ` ` + m[2]
			if _, err := r.pool.Exec(ctx, ddl); err != nil {
				return err
			}
		}
	}
	_, err := r.pool.Exec(ctx, `UPDATE projection_rebuilds SET phase = 'indexed', updated_at = now() WHERE name = $1`, r.p.Name())
	r.phase = "indexed"
	return err
}

// copy replays from the shadow's position until a read comes back short
// (the shadow is within one batch of the head). Reading the next batch
// overlaps applying the current one.
func (r *rebuilder) copy(ctx context.Context) error {
	r.report("copy")
	if _, ok := r.p.(AuditSeal); ok {
		return r.copySeal(ctx)
	}
	g, ctx := errgroup.WithContext(ctx)
	batches := make(chan []eventstore.Event, 2)
	g.Go(func() error {
		defer close(batches)
		for after := r.pos; ; {
			evs, err := readBatch(ctx, r.events, r.p, r.pool, after, r.opts.BatchSize)
			if err != nil {
				return err
			}
			if len(evs) > 0 {
				select {
				case batches <- evs:
				case <-ctx.Done():
					return ctx.Err()
				}
				after = evs[len(evs)-1].Position
			}
			if len(evs) < r.opts.BatchSize {
				return nil
			}
		}
	})
	g.Go(func() error {
		for evs := range batches {
			if err := r.copyBatch(ctx, evs); err != nil {
				return err
			}
			r.report("copy")
		}
		return nil
	})
	return g.Wait()
}

// copyBatch applies one batch to the shadow and moves the rebuild's
// position in the same transaction.
func (r *rebuilder) copyBatch(ctx context.Context, evs []eventstore.Event) error {
	return r.commitBatch(ctx, evs[len(evs)-1].Position, len(evs), func(tx pgx.Tx) error {
		_, err := applyBatch(ctx, tx, r.p, shadowTables, evs, r.opts.Logger)
		return err
	})
}

// commitBatch writes a batch of n events ending at last into the shadow
// with write and moves the rebuild's position, in one transaction.
func (r *rebuilder) commitBatch(ctx context.Context, last eventstore.Position, n int, write func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		// The batch and the position commit together, so a commit lost in a
		// server crash only loses both, and the rebuild redoes them: it need
		// not wait for the WAL flush (~8 ms a batch here). The swap, which
		// hands off to the live runner, stays synchronous.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		if err := write(tx); err != nil {
			return err
		}
		return saveRebuildPosition(ctx, tx, r.p.Name(), last, n)
	})
	if err != nil {
		return err
	}
	r.pos, r.done = last, r.done+int64(n)
	return nil
}

func saveRebuildPosition(ctx context.Context, tx pgx.Tx, name string, pos eventstore.Position, n int) error {
	_, err := tx.Exec(ctx, `UPDATE projection_rebuilds SET transaction_id = $2, "offset" = $3,
		events_done = events_done + $4, updated_at = now() WHERE name = $1`, name, pos.TransactionID, pos.Offset, n)
	if err != nil {
		return fmt.Errorf("save rebuild position: %w", err)
	}
	return nil
}

// swap hands the shadow over to the live runner, retrying when readers of
// the live table keep it from getting its lock in time.
func (r *rebuilder) swap(ctx context.Context) error {
	r.report("swap")
	for attempt := 1; ; attempt++ {
		var pos eventstore.Position
		var n int64
		err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) (err error) {
			pos, n, err = r.swapTx(ctx, tx)
			return err
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" && attempt < 10 { // lock_not_available
			r.opts.Logger.Warn("rebuild: live table busy; retrying the swap", "projection", r.p.Name(), "attempt", attempt)
			continue
		}
		if err != nil {
			return err
		}
		r.pos, r.done = pos, r.done+n
		break
	}
	for _, t := range r.p.Tables() {
		if _, err := r.pool.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{t + oldSuffix}.Sanitize()); err != nil {
			// Harmless: the next rebuild drops it.
			r.opts.Logger.Warn("rebuild: could not drop the old table", "table", t+oldSuffix, "err", err)
		}
	}
	return nil
}

// swapTx applies the tail and swaps, in tx; it returns the position handed
// to the live runner and how many tail events it applied.
func (r *rebuilder) swapTx(ctx context.Context, tx pgx.Tx) (eventstore.Position, int64, error) {
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+swapLockTimeout+`'`); err != nil {
		return eventstore.Position{}, 0, err
	}
	// The live runner locks this row (SKIP LOCKED) before each batch:
	// holding it, we own the live tables until commit.
	if _, err := lockCheckpoint(ctx, tx, r.p.Name(), false); err != nil {
		return eventstore.Position{}, 0, err
	}
	pos, n := r.pos, int64(0)
	for {
		evs, err := readBatch(ctx, r.events, r.p, tx, pos, r.opts.BatchSize)
		if err != nil {
			return eventstore.Position{}, 0, err
		}
		if len(evs) > 0 {
			if _, err := applyBatch(ctx, tx, r.p, shadowTables, evs, r.opts.Logger); err != nil {
				return eventstore.Position{}, 0, err
			}
			pos, n = evs[len(evs)-1].Position, n+int64(len(evs))
		}
		if len(evs) < r.opts.BatchSize {
			break
		}
	}
	for _, t := range r.p.Tables() {
		if err := swapTable(ctx, tx, t); err != nil {
			return eventstore.Position{}, 0, fmt.Errorf("swap %s: %w", t, err)
		}
	}
	if err := saveCheckpoint(ctx, tx, r.p.Name(), r.p.Version(), pos); err != nil {
		return eventstore.Position{}, 0, err
	}
	for _, sql := range []string{
		`DELETE FROM projection_quarantine WHERE projection = $1 AND NOT shadow`,
		`UPDATE projection_quarantine SET shadow = false WHERE projection = $1 AND shadow`,
		`DELETE FROM projection_rebuilds WHERE name = $1`,
	} {
		if _, err := tx.Exec(ctx, sql, r.p.Name()); err != nil {
			return eventstore.Position{}, 0, err
		}
	}
	return pos, n, nil
}

// swapTable renames live→old and shadow→live, indexes (and the constraints
// they back) included, so the live table keeps its index names.
func swapTable(ctx context.Context, tx pgx.Tx, table string) error {
	idx, err := listIndexes(ctx, tx, table)
	if err != nil {
		return err
	}
	ident := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	stmts := []string{`ALTER TABLE ` + ident(table) + ` RENAME TO ` + ident(table+oldSuffix)}
	for _, i := range idx {
		stmts = append(stmts, `ALTER INDEX `+ident(i.name)+` RENAME TO `+ident(i.name+oldSuffix))
	}
	stmts = append(stmts, `ALTER TABLE `+ident(table+shadowSuffix)+` RENAME TO `+ident(table))
	for _, i := range idx {
		stmts = append(stmts, `ALTER INDEX `+ident(i.name+shadowSuffix)+` RENAME TO `+ident(i.name))
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

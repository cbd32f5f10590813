package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
)

// testEnv is a freshly migrated database with a store on it.
type testEnv struct {
	pool  *pgxpool.Pool
	url   string
	store *eventstore.Store
}

func newEnv(t testing.TB) testEnv {
	t.Helper()
	_, url := testdb.New(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return testEnv{pool: pool, url: url, store: eventstore.New(pool)}
}

// seed inserts n generated events (fast, set-based).
func (e testEnv) seed(t testing.TB, n int) {
	t.Helper()
	if err := eventgen.Insert(context.Background(), e.pool, n, 1000, 50); err != nil {
		t.Fatal(err)
	}
}

// appendOne appends one event through the store, as a command would.
func (e testEnv) appendOne(t testing.TB, stream, actor, typ string, data any) string {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.store.Append(context.Background(), stream, eventstore.Any,
		eventstore.Metadata{ActorID: actor, ActorEmail: actor + "@example.com"},
		eventstore.NewEvent{Type: typ, SchemaVersion: 1, Data: b})
	if err != nil {
		t.Fatal(err)
	}
	return res.IDs[0]
}

// waitVisible waits until every event in the table is visible to readers.
func (e testEnv) waitVisible(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eventgen.WaitVisible(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
}

// drain applies every event up to the head to ps, as the live runner would.
func (e testEnv) drain(t testing.TB, ps ...Projection) {
	t.Helper()
	e.waitVisible(t)
	r := NewRunner(e.pool, e.store, ps, WithBatchSize(1000))
	for _, p := range ps {
		if err := ensureCheckpoint(context.Background(), e.pool, p); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := r.step(context.Background(), p)
			if err != nil {
				t.Fatalf("drain %s: %v", p.Name(), err)
			}
			if n < r.batchSize {
				break
			}
		}
	}
}

// run starts a live runner until the test ends.
func (e testEnv) run(t testing.TB, ps []Projection, opts ...RunnerOption) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewRunner(e.pool, e.store, ps, opts...).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitCaughtUp waits until every projection in ps has applied the head.
func (e testEnv) waitCaughtUp(t testing.TB, ps ...Projection) {
	t.Helper()
	e.waitVisible(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		statuses, err := ReadStatus(context.Background(), e.pool, ps)
		if err != nil {
			t.Fatal(err)
		}
		caughtUp := true
		for _, s := range statuses {
			caughtUp = caughtUp && s.State == "live"
		}
		if caughtUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections not caught up: %+v", statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e testEnv) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (e testEnv) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// assertSameRows fails unless tables a and b hold the same rows, duplicates
// included.
func (e testEnv) assertSameRows(t testing.TB, a, b string) {
	t.Helper()
	ai, bi := pgx.Identifier{a}.Sanitize(), pgx.Identifier{b}.Sanitize()
	diff := e.count(t, fmt.Sprintf(`SELECT count(*) FROM ((SELECT * FROM %[1]s EXCEPT ALL SELECT * FROM %[2]s)
		UNION ALL (SELECT * FROM %[2]s EXCEPT ALL SELECT * FROM %[1]s)) d`, ai, bi))
	na, nb := e.count(t, `SELECT count(*) FROM `+ai), e.count(t, `SELECT count(*) FROM `+bi)
	if diff != 0 || na != nb {
		t.Fatalf("%s (%d rows) and %s (%d rows) differ in %d rows", a, na, b, nb, diff)
	}
}

// auditLogCopy is the audit_log projection writing into audit_log_ref under
// its own name: a second, never-rebuilt live read model to compare with.
type auditLogCopy struct{ AuditLog }

func (auditLogCopy) Name() string     { return "audit_log_ref" }
func (auditLogCopy) Tables() []string { return []string{"audit_log_ref"} }
func (a auditLogCopy) Apply(ctx context.Context, tx Tx, _ Tables, events []eventstore.Event) error {
	return a.AuditLog.Apply(ctx, tx, Tables{suffix: "_ref"}, events)
}

func (e testEnv) createAuditLogCopy(t testing.TB) {
	t.Helper()
	e.exec(t, `CREATE TABLE audit_log_ref (LIKE audit_log INCLUDING ALL)`)
}

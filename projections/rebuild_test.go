package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
)

// indexDefs returns the definitions (names included) of table's indexes.
func (e testEnv) indexDefs(t testing.TB, table string) []string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func (e testEnv) assertNoLeftovers(t testing.TB) {
	t.Helper()
	if n := e.count(t, `SELECT count(*) FROM pg_class WHERE relname LIKE 'audit\_log\_%' AND relname <> 'audit_log_ref' AND relkind = 'r'`); n != 0 {
		t.Fatalf("%d shadow or old tables left behind", n)
	}
	if n := e.count(t, `SELECT count(*) FROM projection_rebuilds`); n != 0 {
		t.Fatalf("rebuild state left behind")
	}
}

// The service keeps running during a rebuild — appends, the live runner and
// readers of the live table — and afterwards the rebuilt audit_log equals a
// live one that was never rebuilt, row for row.
func TestRebuildUnderLoadEqualsTheLiveReadModel(t *testing.T) {
	env := newEnv(t)
	env.createAuditLogCopy(t)
	env.seed(t, 30000)
	ps := []Projection{AuditLog{}, auditLogCopy{}, AuditSeal{}}
	env.run(t, ps)
	wantIndexes := env.indexDefs(t, "audit_log")

	ctx, stop := context.WithCancel(context.Background())
	var appended, reads atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 { // concurrent writers commit out of order
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				// Events with a subject too: in a user's stream, and naming
				// another user in the payload.
				stream, typ := fmt.Sprintf("load-%d", w), "execution.prepare"
				data := map[string]any{"n": i, "password": "canary-during-rebuild"}
				switch i % 3 {
				case 1:
					stream, typ = fmt.Sprintf("user-loaded-%d", w), "user.role.changed"
				case 2:
					stream, typ, data["user_id"] = "login-loaded", "auth.login.failure", fmt.Sprint("victim-", w)
				}
				b, _ := json.Marshal(data)
				_, err := env.store.Append(context.Background(), stream, eventstore.Any,
					eventstore.Metadata{ActorID: fmt.Sprint("loader-", w)}, eventstore.NewEvent{Type: typ, SchemaVersion: 1, Data: b})
				if err != nil {
					t.Error(err)
					return
				}
				appended.Add(1)
			}
		})
	}
	reader := NewAuditLogReader(env.pool)
	wg.Go(func() { // the audit endpoints keep answering
		for ctx.Err() == nil {
			if _, err := reader.ListAudit(context.Background(), app.AuditQuery{UserID: "loader-1", Limit: 100}); err != nil {
				t.Errorf("reading the live audit log during the rebuild: %v", err)
				return
			}
			reads.Add(1)
		}
	})

	var phases, copyIndexes []string
	var copyIndexesErr error
	var last RebuildProgress
	_, err := Rebuild(context.Background(), env.pool, env.store, AuditLog{}, RebuildOptions{BatchSize: 2000,
		Progress: func(p RebuildProgress) {
			last = p
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
			if p.Phase == "copy" && p.Done > 0 && copyIndexes == nil && copyIndexesErr == nil {
				// Bulk loading: the shadow has its primary key only.
				rows, err := env.pool.Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE tablename = 'audit_log_shadow'`)
				if err == nil {
					copyIndexes, err = pgx.CollectRows(rows, pgx.RowTo[string])
				}
				copyIndexesErr = err
			}
		}})
	during := appended.Load()
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("appended %d events and read the live log %d times during the rebuild; phases %v", during, reads.Load(), phases)
	if during == 0 || reads.Load() == 0 {
		t.Fatal("no load during the rebuild")
	}
	if !slices.Equal(phases, []string{"copy", "index", "copy", "swap", "done"}) {
		t.Errorf("phases %v", phases)
	}
	if last.Phase != "done" || last.Total < 30000 || last.Done < last.Total {
		t.Errorf("last progress %+v: want the stream's size at the start (30000 and what was appended by then) as Total", last)
	}
	if copyIndexesErr != nil || !slices.Equal(copyIndexes, []string{"audit_log_pkey_shadow"}) {
		t.Errorf("the shadow's indexes while copying: %v %v, want its primary key only", copyIndexes, copyIndexesErr)
	}
	env.waitCaughtUp(t, ps...)
	env.assertSameRows(t, "audit_log", "audit_log_ref")
	if n, m := env.count(t, `SELECT count(*) FROM audit_log`), env.count(t, `SELECT count(*) FROM watermill_events`); n != m {
		t.Fatalf("audit_log has %d rows for %d events", n, m)
	}
	// The rows compared above carry subjects of every origin.
	for _, subject := range []string{"loaded-1", "victim-1", eventgen.ActorID(8)} {
		if env.count(t, `SELECT count(*) FROM audit_log WHERE subject_id = $1`, subject) == 0 {
			t.Fatalf("no row about %s", subject)
		}
	}
	if !slices.ContainsFunc(wantIndexes, func(def string) bool {
		return strings.Contains(def, "audit_log_subject_idx") && strings.Contains(def, "WHERE ((subject_id IS NOT NULL)")
	}) {
		t.Fatalf("indexes %v", wantIndexes)
	}
	if got := env.indexDefs(t, "audit_log"); !slices.Equal(got, wantIndexes) {
		t.Fatalf("indexes after the swap %v, want %v", got, wantIndexes)
	}
	env.assertNoLeftovers(t)

	// Once more, with the swapped-in table as the source of the shadow.
	if _, err := Rebuild(context.Background(), env.pool, env.store, AuditLog{}, RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	env.waitCaughtUp(t, ps...)
	env.assertSameRows(t, "audit_log", "audit_log_ref")
	if got := env.indexDefs(t, "audit_log"); !slices.Equal(got, wantIndexes) {
		t.Fatalf("indexes after the second swap %v, want %v", got, wantIndexes)
	}
	env.assertNoLeftovers(t)
}

func TestTheSealIsOnlyRebuiltByReseal(t *testing.T) {
	env := newEnv(t)
	env.seed(t, 500)
	env.drain(t, AuditSeal{})
	if _, err := Rebuild(context.Background(), env.pool, env.store, AuditSeal{}, RebuildOptions{}); !errors.Is(err, ErrSealRebuild) {
		t.Fatalf("rebuild of the seal: %v", err)
	}
	before, err := ReadSealHead(context.Background(), env.pool)
	if err != nil {
		t.Fatal(err)
	}

	env.exec(t, `CREATE TABLE audit_seal_ref AS SELECT * FROM audit_seal`)

	record := app.NewRecordResealHandler(postgres.NewEvents(env.store))
	cli := app.WithCaller(context.Background(), app.Caller{Email: "cli", RequestID: "run-1"})
	// Batches of 64: the streamed copy crosses many batch boundaries and
	// recycles its buffers.
	if _, err := Reseal(cli, env.pool, env.store, record, "ops@host", RebuildOptions{BatchSize: 64}); err != nil {
		t.Fatal(err)
	}
	env.drain(t, AuditSeal{}) // as the live runner would, should the re-seal's own event have been invisible at the swap
	if n := env.count(t, `SELECT count(*) FROM (SELECT * FROM audit_seal_ref EXCEPT SELECT * FROM audit_seal) d`); n != 0 {
		t.Fatalf("%d links of the live chain differ in the re-sealed one", n)
	}
	evs, err := env.store.Read(context.Background(), before.Position, 10, eventstore.Filter{TypePrefix: "audit.reseal"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("the re-seal was not recorded: %v %v", evs, err)
	}
	var data struct {
		PreviousHead SealHead `json:"previous_head"`
		Operator     string
	}
	if err := json.Unmarshal(evs[0].Data, &data); err != nil || data.PreviousHead != before || data.Operator != "ops@host" {
		t.Fatalf("reseal event %s: %+v %v", evs[0].Data, data, err)
	}
	if md := evs[0].Metadata; md.ActorEmail != "cli" || md.CorrelationID != "run-1" || evs[0].StreamID != "audit-seal" {
		t.Fatalf("reseal event recorded as %+v in %s", md, evs[0].StreamID)
	}
	rep := verify(t, env, &before) // the re-sealed chain still holds the old head
	if rep.Break != nil || rep.Verified != 501 {
		t.Fatalf("after the re-seal: %+v", rep)
	}

	pos := env.positions(t)
	env.exec(t, `UPDATE watermill_events SET payload = '{"forged":true}' WHERE (transaction_id, "offset") = ($1, $2)`, pos[7].TransactionID, pos[7].Offset)
	_, err = Reseal(cli, env.pool, env.store, record, "ops@host", RebuildOptions{})
	var refused *SealRefusedError
	if !errors.As(err, &refused) || refused.Break.Position != pos[7] {
		t.Fatalf("re-sealing a tampered stream: %v", err)
	}
	if n := env.count(t, `SELECT count(*) FROM watermill_events WHERE event_type = 'audit.reseal'`); n != 1 {
		t.Fatalf("a refused re-seal recorded an event")
	}
}

// A read model stored by another version of the projection is left alone by
// the runner until a rebuild brings it to the current version.
func TestAStaleReadModelWaitsForARebuild(t *testing.T) {
	env := newEnv(t)
	env.seed(t, 200)
	env.drain(t, AuditLog{})
	env.exec(t, `UPDATE projection_checkpoints SET version = 0 WHERE name = 'audit_log'`)
	env.seed(t, 50)
	env.waitVisible(t)
	r := NewRunner(env.pool, env.store, []Projection{AuditLog{}})
	if _, err := r.step(context.Background(), AuditLog{}); err == nil || !strings.Contains(err.Error(), "projections rebuild audit_log") {
		t.Fatalf("step on a stale read model: %v", err)
	}
	if s, _ := ReadStatus(context.Background(), env.pool, []Projection{AuditLog{}}); s[0].State != "stale" {
		t.Fatalf("status %+v", s[0])
	}
	if _, err := Rebuild(context.Background(), env.pool, env.store, AuditLog{}, RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if s, _ := ReadStatus(context.Background(), env.pool, []Projection{AuditLog{}}); s[0].State != "live" || s[0].Version != 2 {
		t.Fatalf("after the rebuild: %+v", s[0])
	}
	if n := env.count(t, `SELECT count(*) FROM audit_log`); n != 250 {
		t.Fatalf("%d rows", n)
	}
}

func TestOneRebuildOfAProjectionAtATime(t *testing.T) {
	env := newEnv(t)
	conn, err := env.pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_lock($1, hashtext('audit_log'))`, rebuildLockClass); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(context.Background(), env.pool, env.store, AuditLog{}, RebuildOptions{}); err == nil || !strings.Contains(err.Error(), "another rebuild") {
		t.Fatalf("a concurrent rebuild: %v", err)
	}
}

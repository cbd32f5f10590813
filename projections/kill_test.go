package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
)

// The kill tests run the runner or a rebuild in a child process — this test
// binary re-executed with childEnv set — and SIGKILL it.
const (
	childEnv   = "PROJECTIONS_TEST_CHILD"
	childDBEnv = "PROJECTIONS_TEST_DATABASE_URL"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode, os.Getenv(childDBEnv)))
	}
	os.Exit(m.Run())
}

func child(mode, url string) int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	store := eventstore.New(pool)
	switch mode {
	case "runner":
		NewRunner(pool, store, []Projection{AuditLog{}, AuditSeal{}}, WithBatchSize(300)).Run(ctx)
	case "rebuild":
		if _, err := Rebuild(ctx, pool, store, AuditLog{}, RebuildOptions{BatchSize: 1000}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func startChild(t *testing.T, env testEnv, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDBEnv+"="+env.url)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// killMidTransaction SIGKILLs cmd the moment one of its backends is inside
// a write transaction (it holds a transaction id: rows written, not yet
// committed).
func killMidTransaction(t *testing.T, env testEnv, cmd *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for env.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the child never opened a write transaction")
		}
	}
	kill(t, env, cmd)
}

// kill SIGKILLs cmd and waits until the database has noticed: its backends
// gone, their transactions rolled back.
func kill(t *testing.T, env testEnv, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for env.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`) > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKilledRunnerLeavesAConsistentReadModel(t *testing.T) {
	env := newEnv(t)
	env.seed(t, 40000)
	env.waitVisible(t)
	ps := []Projection{AuditLog{}, AuditSeal{}}
	for range 4 {
		cmd := startChild(t, env, "runner")
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		killMidTransaction(t, env, cmd)
		s, err := ReadStatus(context.Background(), env.pool, ps)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("killed mid-batch: audit_log %d rows at %s, audit_seal at %s", env.count(t, `SELECT count(*) FROM audit_log`), s[0].Checkpoint, s[1].Checkpoint)
		// The read model holds exactly the events up to its checkpoint.
		if n := env.count(t, `SELECT count(*) FROM watermill_events WHERE (transaction_id, "offset") <= ($1, $2)`,
			s[0].Checkpoint.TransactionID, s[0].Checkpoint.Offset); n != env.count(t, `SELECT count(*) FROM audit_log`) {
			t.Fatalf("audit_log disagrees with its checkpoint: %d events up to it", n)
		}
	}
	cmd := startChild(t, env, "runner") // a restart finishes the job
	env.waitCaughtUp(t, ps...)
	kill(t, env, cmd)

	if rep := verify(t, env, nil); rep.Break != nil || rep.Verified != 40000 {
		t.Fatalf("seal after kills: %+v", rep)
	}
	env.exec(t, `CREATE TABLE audit_log_before AS SELECT * FROM audit_log`)
	if _, err := Rebuild(context.Background(), env.pool, env.store, AuditLog{}, RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	env.assertSameRows(t, "audit_log", "audit_log_before")
}

func TestKilledRebuildLeavesTheLiveReadModelIntactAndResumes(t *testing.T) {
	env := newEnv(t)
	env.seed(t, 40000)
	env.drain(t, AuditLog{})
	env.exec(t, `CREATE TABLE audit_log_live AS SELECT * FROM audit_log`)

	cmd := startChild(t, env, "rebuild")
	deadline := time.Now().Add(30 * time.Second)
	for env.count(t, `SELECT coalesce(max(events_done), 0) FROM projection_rebuilds`) < 10000 {
		if time.Now().After(deadline) {
			t.Fatal("the rebuild made no progress")
		}
		time.Sleep(time.Millisecond)
	}
	killMidTransaction(t, env, cmd)
	env.assertSameRows(t, "audit_log", "audit_log_live")
	s, err := ReadStatus(context.Background(), env.pool, []Projection{AuditLog{}})
	if err != nil || s[0].Rebuild == nil {
		t.Fatalf("the killed rebuild is not shown: %+v %v", s, err)
	}
	killedAt := s[0].Rebuild.EventsDone
	if got := env.count(t, `SELECT count(*) FROM audit_log_shadow`); got != killedAt {
		t.Fatalf("the shadow holds %d rows, its state says %d", got, killedAt)
	}
	// As if a rebuild had also been killed right after an earlier swap.
	env.exec(t, `CREATE TABLE audit_log_old (x int)`)

	var first *RebuildProgress
	_, err = Rebuild(context.Background(), env.pool, env.store, AuditLog{}, RebuildOptions{Progress: func(p RebuildProgress) {
		if first == nil {
			first = &p
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if first.Done != killedAt {
		t.Fatalf("the rerun started at %d events, not where the killed one stopped (%d)", first.Done, killedAt)
	}
	t.Logf("killed at %d of 40000 events; the rerun resumed there", killedAt)
	env.assertSameRows(t, "audit_log", "audit_log_live")
	env.exec(t, `DROP TABLE audit_log_live`)
	env.assertNoLeftovers(t)
}

package testdb

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStaleNames(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	old := now.Add(-2 * time.Hour).Unix()
	recent := now.Add(-10 * time.Minute).Unix()
	names := []string{
		fmt.Sprintf("t_testfoo_%d_deadbeef", old),
		fmt.Sprintf("t_testbar_%d_0badf00d", recent),
		"t_legacyname_deadbeef", // no timestamp: age unknown, kept
		fmt.Sprintf("bench_eventstore_%d_deadbeef", old),
		"postgres",
	}
	got := staleNames(names, now)
	want := []string{fmt.Sprintf("t_testfoo_%d_deadbeef", old)}
	if !slices.Equal(got, want) {
		t.Fatalf("staleNames = %v, want %v", got, want)
	}
}

// A database left by a killed run (created over an hour ago) is dropped by
// the sweep; one a parallel run is using right now is not.
func TestSweepDropsOnlyStaleDatabases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Skipf("no PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	now := time.Now()
	stale := fmt.Sprintf("t_sweeptest_%d_%08x", now.Add(-2*time.Hour).Unix(), now.UnixNano()&0xffffffff)
	fresh := fmt.Sprintf("t_sweeptest_%d_%08x", now.Unix(), now.UnixNano()&0xffffffff)
	for _, n := range []string{stale, fresh} {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{n}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		// Deferred, not t.Cleanup: admin is closed before cleanups run.
		defer func() {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
		}()
	}
	sweepStale(ctx, admin, now)
	exists := func(n string) bool {
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, n).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if exists(stale) {
		t.Errorf("stale database %s survived the sweep", stale)
	}
	if !exists(fresh) {
		t.Errorf("fresh database %s was dropped", fresh)
	}
}

package testdb

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// WaitEventsVisible waits until every event stored in pool's database is
// below the server's xmin horizon, which the store's reads, the projections
// and a rebuild read up to. The horizon is server-wide: a transaction open
// in another test's database (another package under go test ./..., another
// checkout's tests on the shared server) hides what was just committed here
// until it ends.
func WaitEventsVisible(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var visible bool
		if err := pool.QueryRow(context.Background(),
			`SELECT coalesce(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), true) FROM watermill_events`).Scan(&visible); err != nil {
			t.Fatalf("testdb: %v", err)
		}
		if visible {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("testdb: a transaction open on the server kept the latest events invisible for 90 s")
		}
	}
}

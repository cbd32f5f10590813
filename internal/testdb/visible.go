package testdb

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/internal/eventgen"
)

// WaitEventsVisible waits until every event stored in pool's database is
// below the server's xmin horizon, which the store's reads, the projections
// and a rebuild read up to (eventgen.WaitVisible, bounded for a test). The
// horizon is server-wide: a transaction open in another test's database
// (another package under go test ./..., another checkout's tests on the
// shared server) hides what was just committed here until it ends.
func WaitEventsVisible(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := eventgen.WaitVisible(ctx, pool); err != nil {
		t.Fatalf("testdb: %v", err)
	}
}

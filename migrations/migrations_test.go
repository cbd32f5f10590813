package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/tradeops/tradeops/internal/testdb"
	"github.com/tradeops/tradeops/migrations"
)

// Replicas starting together all migrate the same empty database: the
// advisory lock serialises them, every one succeeds, and they agree.
func TestConcurrentReplicasMigrateOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url, drop := testdb.Create(ctx, t)
	t.Cleanup(drop)
	const replicas = 6
	versions := make([]int32, replicas)
	var g errgroup.Group
	for i := range replicas {
		g.Go(func() error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			versions[i], err = migrations.Apply(ctx, conn)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		if v != versions[0] || v < 3 {
			t.Fatalf("replicas disagree on the schema version: %v", versions)
		}
	}
	// And again on a migrated database: nothing to do, same version.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if v, err := migrations.Apply(ctx, conn); err != nil || v != versions[0] {
		t.Fatalf("re-run: version %d, %v", v, err)
	}
}

package eventstore_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/eventstore/eventstoretest"
	"github.com/tradeops/tradeops/internal/testdb"
)

// newStore gives each conformance test a freshly migrated database on the
// real server and a pool large enough for the concurrency tests.
func newStore(t *testing.T) *eventstore.Store {
	_, url := testdb.New(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// pgxpool.Close waits for every acquired connection. Should a failed
		// test leak one, give up after a while: testdb's DROP DATABASE ...
		// WITH (FORCE), which runs next, ends its session (and any open
		// transaction holding back the server-wide xmin).
		done := make(chan struct{})
		go func() { pool.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Log("pool did not close within 10s: a connection was leaked")
		}
	})
	return eventstore.New(pool)
}

func TestConformance(t *testing.T) {
	eventstoretest.Run(t, newStore)
}

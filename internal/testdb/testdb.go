// Package testdb gives each test its own freshly migrated PostgreSQL database
// on the real server (never a mock), dropped when the test ends.
package testdb

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is used when neither TEST_DATABASE_URL nor DATABASE_URL is set
// (`make test` sets DATABASE_URL through scripts/devdb.sh).
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server the test databases are created on.
func AdminURL() string {
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return DefaultURL
}

// New creates a migrated database for t and returns a pool on it and its URL.
func New(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url, drop := createDB(ctx, t, true)
	t.Cleanup(drop)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("testdb: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, url
}

// Create makes an empty database and returns its URL and a function that
// drops it.
func Create(ctx context.Context, t testing.TB) (string, func()) {
	t.Helper()
	return createDB(ctx, t, false)
}

func createDB(ctx context.Context, t testing.TB, migrate bool) (string, func()) {
	t.Helper()
	url, drop, err := CreateDatabase(ctx, "", "t_"+t.Name(), migrate)
	if err != nil {
		t.Fatalf("%v (is PostgreSQL running? `make test` starts one)", err)
	}
	return url, func() {
		if err := drop(); err != nil {
			t.Logf("%v", err)
		}
	}
}

func sanitize(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return b.String()
}

func redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "DATABASE_URL"
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

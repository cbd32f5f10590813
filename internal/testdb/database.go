package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/migrations"
)

// CreateDatabase creates an empty database named prefix_<random> on the
// server adminURL points at (AdminURL() when empty) and returns its URL and
// a function that drops it (WITH (FORCE), ending any session left on it).
// It is New for programs that have no *testing.T, such as benchmarks; with
// migrate it also applies the migrations.
func CreateDatabase(ctx context.Context, adminURL, prefix string, migrate bool) (dbURL string, drop func() error, err error) {
	if adminURL == "" {
		adminURL = AdminURL()
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("testdb: connect to %s: %w", redact(adminURL), err)
	}
	defer admin.Close(ctx)
	sweepOnce.Do(func() { sweepStale(ctx, admin, time.Now()) })
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	// The creation time in the name lets a later run tell a database that a
	// killed run left behind from one a parallel run is still using.
	name := sanitize(prefix) + "_" + strconv.FormatInt(time.Now().Unix(), 10) + "_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("testdb: create %s: %w", name, err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return fmt.Errorf("testdb: drop %s: %w", name, err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("testdb: drop %s: %w", name, err)
		}
		return nil
	}
	u, err := url.Parse(adminURL)
	if err != nil || u.Scheme == "" {
		// A keyword/value connection string: rebuild a URL from its parts.
		cfg, perr := pgx.ParseConfig(adminURL)
		if perr != nil {
			_ = drop()
			return "", nil, fmt.Errorf("testdb: %w", perr)
		}
		u = &url.URL{Scheme: "postgres", User: url.User(cfg.User), Host: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), RawQuery: "sslmode=disable"}
		if cfg.Password != "" {
			u.User = url.UserPassword(cfg.User, cfg.Password)
		}
	}
	u.Path = "/" + name
	dbURL = u.String()
	if migrate {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			_ = drop()
			return "", nil, fmt.Errorf("testdb: connect to %s: %w", name, err)
		}
		_, err = migrations.Apply(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			_ = drop()
			return "", nil, fmt.Errorf("testdb: %w", err)
		}
	}
	return dbURL, drop, nil
}

// staleAfter is how old a test database must be before a later run drops it:
// far longer than any test runs (make test's timeout is 12 minutes).
const staleAfter = time.Hour

var (
	sweepOnce sync.Once
	// testDBName matches the names createDB gives (t_<test>_<unix>_<hex>).
	testDBName = regexp.MustCompile(`^t_[a-z0-9_]*_([0-9]{10})_[0-9a-f]{8}$`)
)

// sweepStale drops the test databases a killed run left behind (a normal run
// drops its own at cleanup). Best effort: a failure here must not fail the
// test that happened to run first, so errors are ignored.
func sweepStale(ctx context.Context, admin *pgx.Conn, now time.Time) {
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 't\_%'`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range staleNames(names, now) {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
}

// staleNames picks the test databases created more than staleAfter before now.
func staleNames(names []string, now time.Time) []string {
	var stale []string
	for _, name := range names {
		m := testDBName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		created, err := strconv.ParseInt(m[1], 10, 64)
		if err == nil && now.Sub(time.Unix(created, 0)) > staleAfter {
			stale = append(stale, name)
		}
	}
	return stale
}

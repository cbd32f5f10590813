package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
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
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := sanitize(prefix) + "_" + hex.EncodeToString(b)
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

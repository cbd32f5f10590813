// Package postgres holds the PostgreSQL plumbing shared by the adapters:
// connecting with retries and exporting pool statistics.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/migrations"
)

// ErrBadURL means DATABASE_URL could not be parsed. The parse error itself is
// not wrapped: pgx may quote the URL, password included.
var ErrBadURL = errors.New("DATABASE_URL is malformed (expected postgres://user:password@host:port/db?sslmode=...)")

const defaultMaxConns = 20

// NewPool parses url and returns a pool. It does not connect yet: the first
// use does, so a server can start while the database is down.
func NewPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, ErrBadURL
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	// pgxpool's default (max(4, NumCPU)) is too small once the projection
	// runners hold connections next to the API; pool_max_conns in the URL
	// still wins.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	return pool, nil
}

// MigrateWithRetry applies the migrations, retrying while the database is
// unreachable, until ctx ends.
func MigrateWithRetry(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	return Retry(ctx, log, "migrations", func(ctx context.Context) error { return migrate(ctx, pool) })
}

// Retry runs fn until it succeeds or ctx ends, with exponential backoff (up
// to 10 s between tries): start-up work that must wait for the database.
func Retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	for backoff := 250 * time.Millisecond; ; backoff = min(backoff*2, 10*time.Second) {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		log.Warn(what+" failed; the database may not be ready; retrying", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	v, err := migrations.Apply(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if err := CheckXIDHorizon(ctx, conn.Conn()); err != nil {
		return err
	}
	slog.Debug("schema migrated", "version", v)
	return nil
}

// CheckXIDHorizon refuses to run on a database restored from a dump into a
// cluster whose transaction ids are behind the stored events': new events
// would sort before old ones and every reader would skip them.
func CheckXIDHorizon(ctx context.Context, conn *pgx.Conn) error {
	var behind bool
	var maxXID string
	err := conn.QueryRow(ctx, `SELECT coalesce(max(transaction_id)::text, '0'),
		coalesce(max(transaction_id) >= pg_current_xact_id(), false) FROM watermill_events`).Scan(&maxXID, &behind)
	if err != nil {
		return fmt.Errorf("check transaction id horizon: %w", err)
	}
	if behind {
		return fmt.Errorf("the event store holds transaction id %s, ahead of this cluster's: it was restored from a dump; "+
			"advance the cluster's xid past it before serving (see docs/ARCHITECTURE.md, 'Dump and restore')", maxXID)
	}
	return nil
}

// PoolCollector exports pgxpool statistics to Prometheus.
type PoolCollector struct {
	pool  *pgxpool.Pool
	descs map[string]*prometheus.Desc
}

// NewPoolCollector returns a collector for pool.
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("tradeops_db_pool_"+name, help, nil, nil)
	}
	return &PoolCollector{pool: pool, descs: map[string]*prometheus.Desc{
		"total":       d("conns_total", "Connections in the pool."),
		"idle":        d("conns_idle", "Idle connections."),
		"acquired":    d("conns_acquired", "Connections in use."),
		"max":         d("conns_max", "Pool size limit."),
		"acquires":    d("acquires_total", "Connection acquisitions."),
		"empty_waits": d("empty_acquires_total", "Acquisitions that had to wait for a connection."),
		"wait":        d("acquire_wait_seconds_total", "Time spent waiting for a connection."),
	}}
}

func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g, ctr := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(c.descs["total"], g, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.descs["idle"], g, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.descs["acquired"], g, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.descs["max"], g, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.descs["acquires"], ctr, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.descs["empty_waits"], ctr, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.descs["wait"], ctr, s.AcquireDuration().Seconds())
}

package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tradeops/tradeops/adapters/postgres"
)

// openDB opens a pool on DATABASE_URL (or DATABASE_URL_FILE) for the
// operator tools; only serve needs the other secrets.
func openDB(ctx context.Context, getenv env) (*pgxpool.Pool, error) {
	url, err := lookup(getenv, "DATABASE_URL")
	if err != nil {
		return nil, err
	}
	if url == "" {
		return nil, usageError("DATABASE_URL is not set")
	}
	pool, err := postgres.NewPool(ctx, url)
	if errors.Is(err, postgres.ErrBadURL) {
		return nil, &exitError{code: 2, err: err}
	}
	return pool, err
}

// newRegistry is the Prometheus registry of a long-running process: Go
// runtime, process and connection-pool metrics; features add their own.
func newRegistry(pool *pgxpool.Pool) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		postgres.NewPoolCollector(pool))
	return reg
}

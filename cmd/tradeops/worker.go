package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/projections"
)

// runWorker runs the projections without the API, for deployments that
// scale them apart (then run serve with --projections=off). Several workers
// may run: each batch of a projection is applied by exactly one of them.
const workerUsage = `usage: tradeops worker [--metrics-addr :9091]
Runs the projections without the API (then run serve --projections=off), and
the export of the event stream to NATS JetStream when EXPORT_NATS_URL is set
(see tradeops export -h).`

func runWorker(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", ":9091", "serve Prometheus metrics on this address (empty: off)")
	if _, err := parseFlags(fs, args, io.out, workerUsage, 0); err != nil {
		return err
	}
	exportCfg, exporting, err := exportConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	if exporting {
		if err := validExportConfig(exportCfg); err != nil {
			return err
		}
	}
	return runDaemon(ctx, getenv, io.out, *metricsAddr, func(ctx context.Context, pool *pgxpool.Pool, reg *prometheus.Registry, log *slog.Logger) error {
		slog.SetDefault(log)
		g, ctx := errgroup.WithContext(ctx)
		if exporting {
			// A configuration error the broker reports (credentials,
			// permissions) stops the worker with it; an unavailable broker
			// is waited for.
			g.Go(func() error { return runRelay(ctx, pool, exportCfg, reg, log) })
		}
		g.Go(func() error {
			startProjections(ctx, pool, eventstore.New(pool), reg, log)
			return nil
		})
		return g.Wait()
	})
}

// runDaemon is the frame of the long-running commands beside the API
// (worker, export nats): logger, pool, metrics registry and listener,
// migrations (waiting for the database), then work until ctx ends or work
// fails. work returning errDone ends the daemon successfully.
func runDaemon(ctx context.Context, getenv env, logTo io.Writer, metricsAddr string,
	work func(ctx context.Context, pool *pgxpool.Pool, reg *prometheus.Registry, log *slog.Logger) error) error {
	level, err := logLevel(getenv)
	if err != nil {
		return err
	}
	log := newLogger(logTo, level)
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := newRegistry(pool)
	g, ctx := errgroup.WithContext(ctx)
	if err := serveMetrics(ctx, g, metricsAddr, reg, log); err != nil {
		return err
	}
	g.Go(func() error {
		if err := postgres.MigrateWithRetry(ctx, pool, log); err != nil {
			return nil // shutting down
		}
		return work(ctx, pool, reg, log)
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errDone) {
		return err
	}
	return nil
}

// errDone ends a daemon whose work is finished.
var errDone = errors.New("done")

// logLevel reads LOG_LEVEL (default info).
func logLevel(getenv env) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(orDefault(getenv("LOG_LEVEL"), "info"))); err != nil {
		return level, usageError("LOG_LEVEL must be one of debug, info, warn, error")
	}
	return level, nil
}

// serveMetrics serves reg on addr within g (nothing when addr is empty).
func serveMetrics(ctx context.Context, g *errgroup.Group, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on --metrics-addr %s: %w", addr, err)
	}
	log.Info("serving metrics", "addr", ln.Addr().String())
	g.Go(func() error { return serveHTTP(ctx, ln, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), log) })
	return nil
}

// startProjections keeps the live projections up to date until ctx ends.
func startProjections(ctx context.Context, pool *pgxpool.Pool, store *eventstore.Store, reg prometheus.Registerer, log *slog.Logger) {
	log.Info("projections running", "projections", projectionNames())
	projections.NewRunner(pool, store, projections.All(), projections.WithMetrics(reg), projections.WithLogger(log)).Run(ctx)
}

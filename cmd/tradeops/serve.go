package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/api"
	"github.com/tradeops/tradeops/eventstore"
	porthttp "github.com/tradeops/tradeops/ports/http"
	"github.com/tradeops/tradeops/ports/http/console"
)

const serveUsage = `usage: tradeops serve [--dev] [--projections on|off] [--pprof ADDR]
Applies the migrations and serves the HTTP API on LISTEN_ADDR; the
configuration comes from the environment (see README).`

func runServe(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dev := fs.Bool("dev", false, "development mode: generate throwaway secrets when missing, seed demo users")
	runProjs := fs.String("projections", "on", "run the projections in this process: on, or off when `tradeops worker` runs them")
	pprofAddr := fs.String("pprof", "", "development: serve net/http/pprof on this `address` (e.g. 127.0.0.1:6060); off by default")
	if _, err := parseFlags(fs, args, io.out, serveUsage, 0); err != nil {
		return err
	}
	if *runProjs != "on" && *runProjs != "off" {
		return usageError("--projections must be on or off")
	}
	cfg, err := loadConfig(getenv, *dev)
	if err != nil {
		return err
	}
	log := newLogger(io.out, cfg.LogLevel)
	slog.SetDefault(log)
	for _, name := range cfg.GeneratedSecrets {
		log.Warn("DEV MODE: generated a throwaway secret; tokens and encrypted data will not survive a restart. Never use --dev in production.", "variable", name)
	}

	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer pool.Close()

	reg := newRegistry(pool)
	store := eventstore.New(pool, eventstore.WithObserver(eventstore.NewPrometheusObserver(reg)))
	keys, err := newKeyring(cfg.EncryptionKey)
	if err != nil {
		return err
	}
	log.Info("encryption key loaded", "encryption_key_id", keys.KeyID())
	identity, err := newIdentity(ctx, cfg, getenv, store, keys, io.err, log)
	if err != nil {
		return err
	}
	vault := newVault(pool, store, keys, identity.auth, log)
	execution, err := newExecution(cfg.Exchanges, store, keys, identity.auth, systemClock{}, log)
	if err != nil {
		return err
	}

	var ready atomic.Bool
	handler := porthttp.NewHandler(porthttp.Options{
		Version:           version,
		Health:            pool,
		Registry:          reg,
		Logger:            log,
		Ready:             ready.Load,
		Classify:          postgres.Classify,
		TrustProxyHeaders: cfg.TrustProxy,
		TrustedProxies:    cfg.TrustedProxies,
	}, apiRoutes(store, identity, vault, execution)...)

	if *pprofAddr != "" {
		if err := servePprof(ctx, *pprofAddr, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", version)

	// The database may still be down: keep serving /healthz (degraded) while
	// migrations are retried, then open the API. A start-up that cannot
	// succeed (the wrong ENCRYPTION_KEY) stops the server with its reason.
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	go func() {
		if err := postgres.MigrateWithRetry(ctx, pool, log); err != nil {
			return // shutting down
		}
		if err := identity.start(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error("start-up refused; stopping", "err", err)
				refuse(err)
			}
			return
		}
		if err := vault.start(ctx); err != nil {
			return // shutting down
		}
		ready.Store(true)
		log.Info("database ready; serving the API")
		if *runProjs == "on" {
			startProjections(ctx, pool, store, reg, log)
		}
	}()

	if err := serveHTTP(ctx, ln, handler, log); err != nil {
		return err
	}
	if cause := context.Cause(ctx); !errors.Is(cause, ctx.Err()) {
		return cause // refused above, not asked to stop
	}
	return nil
}

// apiRoutes are the features serve puts behind the API's handler; a test
// checks that api/openapi.yaml describes every route they register.
func apiRoutes(store *eventstore.Store, identity *identity, vault *vault, execution porthttp.Registrar) []porthttp.Registrar {
	return []porthttp.Registrar{identity.routes, auditRoutes(store, identity.auth), vault.routes, execution,
		riskRoutes(store, identity.auth, systemClock{}), porthttp.APIDescriptionRoutes(api.OpenAPI), console.Routes}
}

// shutdownGrace is how long in-flight requests get to finish after SIGTERM.
const shutdownGrace = 25 * time.Second

// serveHTTP serves on ln until ctx ends, then stops accepting connections and
// waits up to shutdownGrace for in-flight requests to finish.
func serveHTTP(ctx context.Context, ln net.Listener, handler http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// Requests keep running after ctx ends: Shutdown, not cancellation,
		// decides when they must stop.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/export"
)

const exportUsage = `usage:
  tradeops export nats [--once [--give-up 1m]] [--batch N] [--metrics-addr ADDR] [broker flags]
  tradeops export status [broker flags]
  tradeops export verify [broker flags]
  tradeops export tail [--from-seq N | --since RFC3339] [--limit N] [broker flags]
nats relays every event, in store order, to a NATS JetStream stream (the same
relay runs inside worker when EXPORT_NATS_URL is set); status shows the
checkpoint, the lag and the stream; verify walks the stream and the store side
by side and exits 1 at the first missing, extra, duplicated or reordered event;
tail prints the exported events as a downstream consumer receives them.
Broker flags default to EXPORT_NATS_URL (or EXPORT_NATS_URL_FILE),
EXPORT_NATS_STREAM, EXPORT_NATS_SUBJECT_PREFIX, EXPORT_NATS_REPLICAS and
EXPORT_NATS_DUPLICATE_WINDOW.`

func runExport(ctx context.Context, getenv env, io stdio, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return showUsage(io.out, exportUsage)
	}
	if len(args) == 0 {
		return usageError("%s", exportUsage)
	}
	switch args[0] {
	case "nats":
		return exportNATS(ctx, getenv, io, args[1:])
	case "status":
		return exportStatus(ctx, getenv, io, args[1:])
	case "verify":
		return exportVerify(ctx, getenv, io, args[1:])
	case "tail":
		return exportTail(ctx, getenv, io, args[1:])
	}
	return usageError("%s", exportUsage)
}

// exportConfigFromEnv reads the EXPORT_NATS_* variables; ok is false when
// EXPORT_NATS_URL is unset (no export). The URL may hold credentials: it is
// read like the other secrets (NAME_FILE) and never printed.
func exportConfigFromEnv(getenv env) (cfg export.Config, ok bool, err error) {
	cfg = export.Config{
		Stream:        orDefault(getenv("EXPORT_NATS_STREAM"), export.DefaultStream),
		SubjectPrefix: orDefault(getenv("EXPORT_NATS_SUBJECT_PREFIX"), export.DefaultSubjectPrefix),
		Replicas:      1,
		Duplicates:    export.DefaultDuplicates,
	}
	if cfg.URL, err = lookup(getenv, "EXPORT_NATS_URL"); err != nil {
		return cfg, false, err
	}
	if v := getenv("EXPORT_NATS_REPLICAS"); v != "" {
		if cfg.Replicas, err = strconv.Atoi(v); err != nil {
			return cfg, false, usageError("EXPORT_NATS_REPLICAS must be a number (1, or 3 in production)")
		}
	}
	if v := getenv("EXPORT_NATS_DUPLICATE_WINDOW"); v != "" {
		if cfg.Duplicates, err = time.ParseDuration(v); err != nil {
			return cfg, false, usageError("EXPORT_NATS_DUPLICATE_WINDOW must be a duration such as 2m")
		}
	}
	return cfg, cfg.URL != "", nil
}

// validExportConfig checks cfg as a usage error (exit 2) naming the
// variable or flag to fix.
func validExportConfig(cfg export.Config) error {
	if err := cfg.Validate(); err != nil {
		return usageError("export: %v (EXPORT_NATS_* or --url, --stream, --subject-prefix, --replicas, --duplicate-window)", err)
	}
	return nil
}

// parseExportFlags adds the broker flags to fs (defaulting to the
// environment), parses args and returns the broker's configuration.
func parseExportFlags(fs *flag.FlagSet, getenv env, io stdio, args []string) (export.Config, error) {
	cfg, _, err := exportConfigFromEnv(getenv)
	if err != nil {
		return cfg, err
	}
	url := fs.String("url", "", "NATS URL (default EXPORT_NATS_URL; prefer the variable: a flag shows in ps)")
	fs.StringVar(&cfg.Stream, "stream", cfg.Stream, "JetStream stream name (EXPORT_NATS_STREAM)")
	fs.StringVar(&cfg.SubjectPrefix, "subject-prefix", cfg.SubjectPrefix, "events go to PREFIX.<event type> (EXPORT_NATS_SUBJECT_PREFIX)")
	fs.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "replicas of the stream when created (EXPORT_NATS_REPLICAS; 3 in production)")
	fs.DurationVar(&cfg.Duplicates, "duplicate-window", cfg.Duplicates, "the stream's duplicate window when created (EXPORT_NATS_DUPLICATE_WINDOW)")
	if _, err := parseFlags(fs, args, io.out, exportUsage, 0); err != nil {
		return cfg, err
	}
	if *url != "" {
		cfg.URL = *url
	}
	if cfg.URL == "" {
		return cfg, usageError("export: no broker: set EXPORT_NATS_URL (or --url)")
	}
	return cfg, validExportConfig(cfg)
}

func exportNATS(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("export nats", flag.ContinueOnError)
	once := fs.Bool("once", false, "exit once every visible event is exported")
	giveUp := fs.Duration("give-up", time.Minute, "with --once: exit 1 when not caught up by then (a broker or database that stays down)")
	batch := fs.Int("batch", 1000, "events per batch (and per checkpoint)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this address (empty: off)")
	cfg, err := parseExportFlags(fs, getenv, io, args)
	if err != nil {
		return err
	}
	if *batch < 1 {
		return usageError("--batch must be positive")
	}
	return runDaemon(ctx, getenv, io.err, *metricsAddr, func(ctx context.Context, pool *pgxpool.Pool, reg *prometheus.Registry, log *slog.Logger) error {
		opts := []export.Option{export.WithBatchSize(*batch)}
		if !*once {
			return runRelay(ctx, pool, cfg, reg, log, opts...)
		}
		// A one-shot run (a cron job, a script) must end: the relay waits
		// out failures with backoff, so give it until --give-up.
		relayCtx, cancel := context.WithTimeout(ctx, *giveUp)
		defer cancel()
		if err := runRelay(relayCtx, pool, cfg, reg, log, append(opts, export.UntilCaughtUp())...); err != nil {
			return err
		}
		if errors.Is(relayCtx.Err(), context.DeadlineExceeded) {
			return &exitError{code: 1, err: fmt.Errorf("export nats --once: not caught up after %s; the errors logged above say why (also `tradeops export status`)", *giveUp)}
		}
		return errDone // ends the metrics listener too
	})
}

// runRelay exports the events until ctx ends; the worker runs it beside
// the projections when EXPORT_NATS_URL is set.
func runRelay(ctx context.Context, pool *pgxpool.Pool, cfg export.Config, reg prometheus.Registerer, log *slog.Logger, opts ...export.Option) error {
	opts = append([]export.Option{export.WithMetrics(reg), export.WithLogger(log)}, opts...)
	return export.NewRelay(pool, eventstore.New(pool), cfg, opts...).Run(ctx)
}

func exportStatus(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("export status", flag.ContinueOnError)
	cfg, err := parseExportFlags(fs, getenv, io, args)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := export.ReadStatus(ctx, pool, cfg.Stream)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "export\t%s to %s (subjects %s.>)\n", cfg.Stream, cfg.Redacted(), cfg.SubjectPrefix)
	if st.Started {
		fmt.Fprintf(tw, "checkpoint\t%s (stream seq %d), updated %s\n", st.Checkpoint.Position, st.Checkpoint.StreamSeq, st.UpdatedAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "published\t%d events\n", st.Published)
	} else {
		fmt.Fprintf(tw, "checkpoint\tnot started (no relay has run)\n")
	}
	fmt.Fprintf(tw, "lag\t%d events, %.1f s\n", st.LagEvents, st.LagSeconds)
	if st.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s\n", st.LastError)
	}
	ss, serr := export.Inspect(ctx, cfg)
	switch {
	case serr != nil:
		fmt.Fprintf(tw, "stream\tunreachable: %v\n", serr)
	case !ss.Exists:
		fmt.Fprintf(tw, "stream\tdoes not exist yet (the relay creates it)\n")
	default:
		fmt.Fprintf(tw, "stream\t%d messages, %d bytes, seq %d..%d, replicas %d, duplicate window %s\n",
			ss.Messages, ss.Bytes, ss.FirstSeq, ss.LastSeq, ss.Replicas, ss.Duplicates)
		if ss.LastPosition != eventstore.Start {
			fmt.Fprintf(tw, "stream last\tposition %s, stored %s\n", ss.LastPosition, ss.LastTime.UTC().Format(time.RFC3339Nano))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if serr != nil {
		return &exitError{code: 1, err: fmt.Errorf("export status: the broker: %w", serr)}
	}
	return nil
}

func exportVerify(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("export verify", flag.ContinueOnError)
	cfg, err := parseExportFlags(fs, getenv, io, args)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := export.Verify(ctx, cfg, eventstore.New(pool))
	if err != nil {
		return err
	}
	if res.Problem != nil {
		return &exitError{code: 1, err: fmt.Errorf("export verify: stream %s does not match the store after %d events in place: %s",
			cfg.Stream, res.Matched, res.Problem)}
	}
	fmt.Fprintf(io.out, "export OK: the %d messages of stream %s are the store's first %d events, in order", res.Messages, cfg.Stream, res.Matched)
	if res.NotYet > 0 {
		fmt.Fprintf(io.out, "; %d newer events not exported yet", res.NotYet)
	}
	fmt.Fprintln(io.out)
	return nil
}

func exportTail(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("export tail", flag.ContinueOnError)
	fromSeq := fs.Uint64("from-seq", 0, "start at this stream sequence (1: the whole stream)")
	since := fs.String("since", "", "start at the first message stored at or after this RFC 3339 time")
	limit := fs.Int64("limit", 0, "stop after N messages (0: until interrupted)")
	cfg, err := parseExportFlags(fs, getenv, io, args)
	if err != nil {
		return err
	}
	opts := export.TailOptions{FromSeq: *fromSeq, Limit: *limit}
	if opts.Since, err = parseTime("--since", *since); err != nil {
		return err
	}
	switch {
	case *fromSeq > 0 && *since != "":
		return usageError("--from-seq and --since: give one")
	case *limit < 0:
		return usageError("--limit must not be negative")
	}
	_, err = export.Tail(ctx, cfg, opts, io.out)
	return err
}

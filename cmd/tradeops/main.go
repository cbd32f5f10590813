// Command tradeops is the tradeops server and its operator tools. This is the
// composition root: the only place that wires adapters into the app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tradeops:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// env is the process environment as a function (tests pass their own).
type env func(string) string

// stdio is where a command reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, getenv env, io stdio, args []string) error
}

// commands lists the subcommands; `tradeops help` prints them.
var commands = map[string]command{
	"serve":       {"run the HTTP API (and the projections unless --projections=off)", runServe},
	"migrate":     {"apply the database migrations and exit", runMigrate},
	"events":      {"forensics on the event stream: events replay [filters]", runEvents},
	"users":       {"manage accounts: users create|list|set-role|reset-password|disable-2fa", runUsers},
	"worker":      {"run the projections without the API (scale them apart from serve)", runWorker},
	"projections": {"read models: projections status | rebuild NAME|--all", runProjections},
	"audit":       {"tamper evidence: audit verify [--against HEAD_FILE] | audit head", runAudit},
	"keys":        {"encryption keys: keys id | status | reencrypt | prune | unfreeze", runKeys},
	"export":      {"the event stream to NATS JetStream: export nats | status | verify | tail", runExport},
}

func run(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	io := stdio{in: stdin, out: stdout, err: stderr}
	if len(args) < 2 || args[1] == "help" || args[1] == "-h" || args[1] == "--help" {
		usage(stdout)
		return nil
	}
	cmd, ok := commands[args[1]]
	if !ok {
		usage(stderr)
		return usageError("unknown command %q", args[1])
	}
	err := cmd.run(ctx, getenv, io, args[2:])
	if errors.Is(err, flag.ErrHelp) {
		return nil // the command printed its usage, as asked
	}
	return err
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "tradeops %s — event-sourced trading operations backend\n\nUsage: tradeops COMMAND [flags]\n\nCommands:\n", version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "  %-12s %s\n\nRun 'tradeops COMMAND -h' for a command's flags. Configuration comes from the environment (see README).\n", "help", "show this list")
}

// exitError carries a process exit code: 2 for usage and configuration errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

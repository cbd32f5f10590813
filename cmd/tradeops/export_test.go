package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/natstest"
	"github.com/tradeops/tradeops/internal/testdb"
)

func runExportCLI(t *testing.T, vars map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"tradeops", "export"}, args...), envOf(vars), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// The operator's round trip: export once, status, verify, tail.
func TestExportCLI(t *testing.T) {
	srv := natstest.Start(t)
	pool, url := testdb.New(t)
	for _, email := range []string{"a@example.com", "b@example.com"} {
		if _, err := runCLI(t, url, "", "users", "create", "--email", email, "--role", "operator"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventgen.WaitVisible(ctx, pool); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": url, "EXPORT_NATS_URL": srv.URL, "EXPORT_NATS_STREAM": "CLI_EVENTS", "EXPORT_NATS_SUBJECT_PREFIX": "cli.events"}
	if _, errOut, err := runExportCLI(t, vars, "nats", "--once"); err != nil {
		t.Fatalf("export nats --once: %v\n%s", err, errOut)
	}
	out, _, err := runExportCLI(t, vars, "status")
	if words := strings.Join(strings.Fields(out), " "); err != nil || !strings.Contains(words, "lag 0 events") ||
		!strings.Contains(words, "stream 2 messages") || !strings.Contains(words, "published 2 events") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, _, err = runExportCLI(t, vars, "verify")
	if err != nil || !strings.Contains(out, "export OK: the 2 messages") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, _, err = runExportCLI(t, vars, "tail", "--from-seq", "1", "--limit", "2")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if err != nil || len(lines) != 2 {
		t.Fatalf("tail: %v\n%s", err, out)
	}
	for _, l := range lines {
		var ev struct {
			Type, Position string
			Data           map[string]any
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Type != "user.created" || ev.Position == "" {
			t.Fatalf("tail line %q: %v", l, err)
		}
	}
}

// export nats --once against a broker that does not answer gives up after
// --give-up with exit 1, naming the cause, never the URL's password.
func TestExportOnceGivesUp(t *testing.T) {
	_, url := testdb.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nobody listens on
	vars := map[string]string{"DATABASE_URL": url, "EXPORT_NATS_URL": "nats://u:canary-pw@" + addr}
	_, errOut, err := runExportCLI(t, vars, "nats", "--once", "--give-up", "1s")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "not caught up after 1s") || !strings.Contains(errOut, "no servers available") ||
		strings.Contains(err.Error()+errOut, "canary") {
		t.Fatalf("exit %d, %v\n%s", exitCode(err), err, errOut)
	}
}

// Bad configuration is a usage error (exit 2) before anything connects,
// and the URL's password never shows.
func TestExportCLIBadConfig(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{}, []string{"status"}, "EXPORT_NATS_URL"},
		{map[string]string{"EXPORT_NATS_URL": "http://u:canary-pw@host:4222"}, []string{"status"}, "scheme"},
		{map[string]string{"EXPORT_NATS_URL": "nats://u:canary-pw@host:4222", "EXPORT_NATS_REPLICAS": "three"}, []string{"verify"}, "EXPORT_NATS_REPLICAS"},
		{map[string]string{"EXPORT_NATS_URL": "nats://u:canary-pw@host:4222"}, []string{"nats", "--stream", "a.b"}, "stream name"},
		{map[string]string{"EXPORT_NATS_URL": "nats://host:4222"}, []string{"tail", "--from-seq", "3", "--since", "2026-01-01T00:00:00Z"}, "give one"},
		{map[string]string{"EXPORT_NATS_URL": "nats://host:4222", "EXPORT_NATS_DUPLICATE_WINDOW": "soon"}, []string{"nats"}, "EXPORT_NATS_DUPLICATE_WINDOW"},
		{map[string]string{}, []string{"nope"}, "usage"},
	} {
		_, _, err := runExportCLI(t, tc.vars, tc.args...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "canary") {
			t.Errorf("%v %v: exit %d, %v; want exit 2 naming %q", tc.vars, tc.args, exitCode(err), err, tc.want)
		}
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"tradeops", "worker", "--metrics-addr", ""},
		envOf(map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x", "EXPORT_NATS_URL": "nats://u:canary-pw@:4222"}), strings.NewReader(""), &out, &errOut)
	if exitCode(err) != 2 || strings.Contains(err.Error(), "canary") {
		t.Errorf("worker with a bad EXPORT_NATS_URL: exit %d, %v", exitCode(err), err)
	}
}

// With EXPORT_NATS_URL set, the worker exports beside the projections and
// serves the export's metrics on its listener.
func TestWorkerExports(t *testing.T) {
	srv := natstest.Start(t)
	pool, dbURL := testdb.New(t)
	seedEvents(t, pool, 300)
	addr, stop := startWorker(t, map[string]string{"DATABASE_URL": dbURL, "EXPORT_NATS_URL": srv.URL})
	waitMetrics(t, addr, time.Now().Add(30*time.Second), "tradeops_export_published_events_total 300", "tradeops_export_active 1")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out, _, err := runExportCLI(t, map[string]string{"DATABASE_URL": dbURL, "EXPORT_NATS_URL": srv.URL}, "verify")
	if err != nil || !strings.Contains(out, "the 300 messages") {
		t.Fatalf("verify after the worker: %v %s", err, out)
	}
}

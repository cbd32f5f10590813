package main

import (
	"context"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/internal/testdb"
)

// TestEveryCommandHasHelp: -h on any command or subcommand prints its usage
// on stdout and succeeds, without touching the database (none is set).
func TestEveryCommandHasHelp(t *testing.T) {
	for _, args := range [][]string{
		{"help"}, {"-h"}, {"--help"},
		{"serve", "-h"}, {"migrate", "-h"}, {"worker", "--help"},
		{"events", "-h"}, {"events", "help"}, {"events", "replay", "-h"},
		{"users", "-h"}, {"users", "--help"}, {"users", "create", "-h"}, {"users", "list", "-h"}, {"users", "set-role", "-h"},
		{"users", "reset-password", "-h"}, {"users", "disable-2fa", "-h"},
		{"projections", "-h"}, {"projections", "status", "-h"}, {"projections", "rebuild", "-h"}, {"projections", "rebuild", "audit_log", "-h"},
		{"audit", "-h"}, {"audit", "verify", "-h"}, {"audit", "head", "-h"},
		{"keys", "-h"}, {"keys", "id", "-h"}, {"keys", "status", "-h"}, {"keys", "reencrypt", "-h"}, {"keys", "prune", "-h"}, {"keys", "unfreeze", "-h"},
		{"export", "-h"}, {"export", "nats", "-h"}, {"export", "status", "-h"}, {"export", "verify", "-h"}, {"export", "tail", "-h"},
	} {
		out, err := runCLI(t, "", "", args...)
		if err != nil || !strings.Contains(strings.ToLower(out), "usage") {
			t.Errorf("%v: exit %d (%v), stdout %q", args, exitCode(err), err, out)
		}
	}
	// A subcommand's help lists its flags.
	out, _ := runCLI(t, "", "", "events", "replay", "-h")
	for _, want := range []string{"-type", "-stream", "-after", "-verify"} {
		if !strings.Contains(out, want) {
			t.Errorf("events replay -h lacks %s:\n%s", want, out)
		}
	}
	if out, _ := runCLI(t, "", "", "users", "create", "-h"); !strings.Contains(out, "-password-stdin") || !strings.Contains(out, "-role") {
		t.Errorf("users create -h:\n%s", out)
	}
}

// TestExtraArgumentsAreUsageErrors: a stray positional argument is exit 2
// with the usage, before anything reads the database — `events replay
// extra` used to dump the whole store.
func TestExtraArgumentsAreUsageErrors(t *testing.T) {
	pool, url := testdb.New(t)
	if _, err := runCLI(t, url, "", "users", "create", "--email", "x@example.com", "--role", "admin"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"events", "replay", "extra"}, {"events", "replay", "--type", "user.", "extra"}, {"serve", "extra"}, {"migrate", "extra"},
		{"worker", "extra"}, {"projections", "status", "extra"}, {"projections", "rebuild", "audit_log", "extra"},
		{"projections", "rebuild", "--batch", "5", "audit_log", "extra"}, {"audit", "head", "extra"}, {"audit", "verify", "extra"},
		{"users", "list", "extra"}, {"users", "set-role", "--email", "x@example.com", "--role", "operator", "extra"},
	} {
		out, err := runCLI(t, url, "", args...)
		if exitCode(err) != 2 || out != "" || !strings.Contains(err.Error(), "unexpected argument") || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v: exit %d (%v), stdout %q", args, exitCode(err), err, out)
		}
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM watermill_events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("events: %d %v (set-role extra must change nothing)", n, err)
	}
}

// TestFlagValuesMustBeText: NUL bytes and invalid UTF-8 in a flag value are
// a clear usage error (exit 2) naming the flag, not a PostgreSQL error.
func TestFlagValuesMustBeText(t *testing.T) {
	_, url := testdb.New(t)
	for _, args := range [][]string{
		{"events", "replay", "--type", "\xff"},
		{"events", "replay", "--type", "auth.\x00"},
		{"events", "replay", "--stream", "user-\xfe"},
		{"events", "replay", "--actor", "\x00"},
		{"users", "create", "--email", "\xff@example.com", "--role", "admin"},
		{"users", "set-role", "--email", "a\x00@example.com", "--role", "admin"},
		{"users", "disable-2fa", "--email", "op@ex\xc3.com"},
		{"audit", "verify", "--against", "/tmp/\xff"},
	} {
		out, err := runCLI(t, url, "", args...)
		flagName := args[len(args)-2]
		if args[0] == "users" {
			flagName = "--email"
		}
		if exitCode(err) != 2 || out != "" || !strings.Contains(err.Error(), flagName+": must be valid UTF-8") {
			t.Errorf("%q: exit %d (%v), stdout %q", args, exitCode(err), err, out)
		}
	}
	if _, err := runCLI(t, url, "", "projections", "rebuild", "audit_log", "\xff"); exitCode(err) != 2 || !strings.Contains(err.Error(), "valid UTF-8") {
		t.Errorf("projection name: %v", err)
	}
}

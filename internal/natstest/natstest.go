// Package natstest runs private nats-server processes with JetStream for
// tests and benchmarks: each on a free port with its own store directory,
// so a test may kill and restart its broker without touching the shared
// one on :4222 or another test's.
package natstest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary finds nats-server: $NATS_SERVER_BIN, then PATH, then /usr/sbin.
func Binary() (string, error) {
	if p := os.Getenv("NATS_SERVER_BIN"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server", nil
	}
	return "", errors.New("nats-server not found (set NATS_SERVER_BIN or install nats-server)")
}

// Server is a running nats-server.
type Server struct {
	URL  string
	bin  string
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Start starts a JetStream server for t, stopped when t ends; args are
// added to its command line (e.g. -c FILE for users and permissions).
// Without a nats-server binary it skips t, unless CI is set: CI must run
// the tests.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI is set, so the NATS tests must run", err)
		}
		t.Skip(err)
	}
	s, err := StartIn(bin, t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// StartIn starts bin with JetStream storing under dir, on a free port.
func StartIn(bin, dir string, args ...string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &Server{URL: "nats://127.0.0.1:" + strconv.Itoa(port), bin: bin, port: port, dir: dir, args: args}
	return s, s.Restart()
}

// Restart starts the server again on the same port and store (after Kill).
func (s *Server) Restart() error {
	s.cmd = exec.Command(s.bin, append([]string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-sd", s.dir}, s.args...)...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kill()
	return errors.New("nats-server did not start listening within 10s")
}

// CPU is the server process's CPU time so far (user + system, from
// /proc/<pid>/stat; zero where there is none), for benchmarks that must
// count the broker's share of a 2-core box.
func (s *Server) CPU() time.Duration {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name: utime and stime are
	// the 12th and 13th of them, in clock ticks (USER_HZ, 100).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// Kill stops the server with SIGKILL (what a crash looks like) and waits.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

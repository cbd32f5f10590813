package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/internal/benchcpu"
)

// cpuMeter measures the CPU a phase costs the tradeops server process, the
// PostgreSQL backends of the scratch database (the server's and the
// baseline's) and this process.
type cpuMeter struct {
	pool *pgxpool.Pool
	pid  int
}

func newCPUMeter(ctx context.Context, dbURL string, pid int) (*cpuMeter, error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	return &cpuMeter{pool: pool, pid: pid}, nil
}

func (m *cpuMeter) close() { m.pool.Close() }

// cpuUsage is the CPU a phase cost.
type cpuUsage struct {
	server, db, self time.Duration
	ok               bool
}

func (u cpuUsage) per(n int) string {
	if !u.ok || n == 0 {
		return ""
	}
	us := func(d time.Duration) int64 { return d.Microseconds() / int64(n) }
	return fmt.Sprintf("CPU/req %d+%d+%d µs", us(u.server), us(u.db), us(u.self))
}

// measure runs a phase and records its CPU on the result. The operators'
// daily usage is reset first, so that every phase measures accepted
// decisions (which write the usage row) however many the earlier ones made.
func (b *bench) measure(ctx context.Context, phase func() *result) *result {
	if _, err := b.cpu.pool.Exec(ctx, `UPDATE execution_daily_usage SET orders = 0, notional = 0`); err != nil {
		r := &result{firstErr: "reset the daily usage: " + err.Error()}
		return r
	}
	m, err := benchcpu.Start(ctx, b.cpu.pool)
	server0, ok := benchcpu.Process(b.cpu.pid)
	r := phase()
	if err != nil || !ok {
		return r
	}
	server1, ok := benchcpu.Process(b.cpu.pid)
	u, err := m.Stop(ctx)
	if err == nil && ok {
		r.cpu = cpuUsage{server: server1 - server0, db: u.Server, self: u.Client, ok: true}
	}
	return r
}

// fetchProfile writes the server's CPU profile over the next d to path.
func fetchProfile(addr string, d time.Duration, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

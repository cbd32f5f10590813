// Package benchcpu tells the benchmarks where CPU time goes on a machine
// that the client and PostgreSQL share: the benchmark process itself
// (getrusage) and the server backends connected to its database
// (/proc/<pid>/stat). On a 2-core box the two compete, so a client that
// burns a core is a server that cannot use it.
//
// Only backends of the benchmark's database are counted: parallel workers
// and background processes (WAL writer, checkpointer) are not. The backends
// are sampled every samplePeriod, so a connection opened and closed within
// the interval (a bulk read's own connection) is counted, less at most its
// last period. It works when the server runs on the same Linux host;
// elsewhere Server stays zero.
package benchcpu

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Go runs the benchmarks on.
const clockTick = 10 * time.Millisecond

// Meter measures one interval.
type Meter struct {
	pool    *pgxpool.Pool
	start   time.Time
	client  time.Duration
	servers map[int]time.Duration // at the start
	mu      sync.Mutex
	last    map[int]time.Duration // at the latest sample
	stop    func()
}

// samplePeriod is how often a Meter samples the backends.
const samplePeriod = 100 * time.Millisecond

// Usage is the CPU time spent in an interval.
type Usage struct {
	Wall, Client, Server time.Duration
}

func (u Usage) String() string {
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / u.Wall.Seconds() }
	return fmt.Sprintf("client CPU %.2fs (%.0f%% of a core), server backends %.2fs (%.0f%%)",
		u.Client.Seconds(), pct(u.Client), u.Server.Seconds(), pct(u.Server))
}

// Start begins an interval.
func Start(ctx context.Context, pool *pgxpool.Pool) (*Meter, error) {
	m := &Meter{pool: pool, last: map[int]time.Duration{}}
	var err error
	if m.servers, err = m.backends(ctx); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(samplePeriod)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				_ = m.sample(sctx) // a failed sample only loses precision
			}
		}
	})
	m.stop = func() { cancel(); wg.Wait() }
	m.client, m.start = self(), time.Now()
	return m, nil
}

// sample records the backends' CPU time so far.
func (m *Meter) sample(ctx context.Context) error {
	now, err := m.backends(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, t := range now {
		m.last[pid] = max(m.last[pid], t)
	}
	return nil
}

// Stop ends the interval.
func (m *Meter) Stop(ctx context.Context) (Usage, error) {
	u := Usage{Wall: time.Since(m.start), Client: self() - m.client}
	m.stop()
	if err := m.sample(ctx); err != nil {
		return Usage{}, err
	}
	for pid, t := range m.last {
		u.Server += t - m.servers[pid] // a backend that started meanwhile counts from zero
	}
	return u, nil
}

func self() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backends returns the CPU time so far of every backend connected to the
// pool's database.
func (m *Meter) backends(ctx context.Context) (map[int]time.Duration, error) {
	rows, err := m.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		if t, ok := procCPU(pid); ok {
			out[pid] = t
		}
	}
	return out, rows.Err()
}

// procCPU reads utime+stime of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields are counted after its closing one.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * clockTick, true
}

// Percentiles renders the p50, p90, p99 and maximum of latencies d
// (sorted in place; d must not be empty).
func Percentiles(d []time.Duration) string {
	slices.Sort(d)
	p := func(q float64) time.Duration {
		return d[int(math.Ceil(q*float64(len(d))))-1].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %s   p90 %s   p99 %s   max %s", p(.5), p(.9), p(.99), d[len(d)-1].Round(10*time.Microsecond))
}

// Process returns the CPU time a process (all its threads) has used so far,
// e.g. a server the benchmark started; ok is false when it cannot be read.
func Process(pid int) (d time.Duration, ok bool) { return procCPU(pid) }

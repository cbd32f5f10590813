package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/eventstore"
)

// indigestible records the "n" of every event, and cannot take two kinds of
// event: one its Go code rejects ({"poison": true}), one its table's CHECK
// constraint rejects (n = 13).
type indigestible struct{}

func (indigestible) Name() string     { return "indigestible" }
func (indigestible) Version() int     { return 1 }
func (indigestible) Tables() []string { return []string{"indigestible"} }
func (indigestible) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.Event) error {
	ids, ns := make([]string, len(events)), make([]int, len(events))
	for i, e := range events {
		if bytes.Contains(e.Data, []byte(`"poison"`)) {
			return &DataError{EventID: e.ID, Err: errors.New("cannot digest poison")}
		}
		var d struct{ N int }
		_ = json.Unmarshal(e.Data, &d)
		ids[i], ns[i] = e.ID, d.N
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+t.Of("indigestible").Sanitize()+` SELECT * FROM unnest($1::text[], $2::int[])`, ids, ns)
	return err
}

func TestPoisonEventsAreQuarantinedAndEverythingElseGoesOn(t *testing.T) {
	env := newEnv(t)
	env.exec(t, `CREATE TABLE indigestible (event_id TEXT PRIMARY KEY, n INT CHECK (n <> 13))`)
	var poison []string
	for i := range 40 {
		data := map[string]any{"n": i}
		if i == 20 {
			data = map[string]any{"poison": true}
		}
		id := env.appendOne(t, "execution-1", "user-a", "execution.prepare", data)
		if i == 13 || i == 20 {
			poison = append(poison, id)
		}
	}
	reg := prometheus.NewRegistry()
	ps := []Projection{indigestible{}, AuditLog{}, AuditSeal{}}
	env.run(t, ps, WithMetrics(reg))
	env.waitCaughtUp(t, ps...)

	if n := env.count(t, `SELECT count(*) FROM indigestible`); n != 38 {
		t.Fatalf("indigestible applied %d events, want all 38 good ones", n)
	}
	if n := env.count(t, `SELECT count(*) FROM audit_log`); n != 40 {
		t.Fatalf("audit_log has %d events: the other projections must not be held up", n)
	}
	if rep := verify(t, env, nil); rep.Break != nil || rep.Verified != 40 {
		t.Fatalf("seal: %+v", rep)
	}
	rows, err := env.pool.Query(context.Background(), `SELECT event_id FROM projection_quarantine WHERE projection = 'indigestible' AND NOT shadow`)
	if err != nil {
		t.Fatal(err)
	}
	quarantined, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(quarantined)
	sort.Strings(poison)
	if !slices.Equal(quarantined, poison) {
		t.Fatalf("quarantined %v, want %v", quarantined, poison)
	}
	statuses, err := ReadStatus(context.Background(), env.pool, ps)
	if err != nil {
		t.Fatal(err)
	}
	if s := statuses[0]; s.Quarantined != 2 || len(s.Recent) != 2 || s.State != "live" || statuses[1].Quarantined != 0 {
		t.Fatalf("status: %+v", statuses)
	}
	t.Logf("quarantined: %+v", statuses[0].Recent)
	deadline := time.Now().Add(5 * time.Second)
	for gaugeValue(t, reg, "tradeops_projection_quarantined_events", "indigestible") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the quarantined gauge never showed the poison events")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Later events still flow.
	env.appendOne(t, "execution-1", "user-a", "execution.prepare", map[string]any{"n": 100})
	env.waitCaughtUp(t, ps...)
	if n := env.count(t, `SELECT count(*) FROM indigestible`); n != 39 {
		t.Fatalf("after the poison: %d", n)
	}
}

// gaugeValue reads the series of a registered gauge vector whose label
// values are labels, in order (-1 when there is none).
func gaugeValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			if slices.Equal(got, labels) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// A systemic failure (here: the read model's table is missing) is retried,
// never quarantined: skipping good events would corrupt the read model.
func TestSystemicFailuresAreRetriedNotQuarantined(t *testing.T) {
	env := newEnv(t)
	for i := range 5 {
		env.appendOne(t, "execution-1", "user-a", "execution.prepare", map[string]any{"n": i})
	}
	env.waitVisible(t)
	ps := []Projection{indigestible{}}
	reg := prometheus.NewRegistry()
	env.run(t, ps, WithMetrics(reg))
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := ReadStatus(context.Background(), env.pool, ps)
		if err != nil {
			t.Fatal(err)
		}
		if s[0].State == "failing" && gaugeValue(t, reg, "tradeops_projection_state", "indigestible", "failing") == 1 {
			if s[0].Checkpoint != eventstore.Start || s[0].Quarantined != 0 || s[0].LagEvents != 5 {
				t.Fatalf("a failing projection moved on: %+v", s[0])
			}
			if live := gaugeValue(t, reg, "tradeops_projection_state", "indigestible", "live"); live != 0 {
				t.Fatalf("state gauge: failing and live=%v", live)
			}
			t.Logf("failing: %s", s[0].LastError)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reported failing: %+v", s[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.exec(t, `CREATE TABLE indigestible (event_id TEXT PRIMARY KEY, n INT)`)
	env.waitCaughtUp(t, ps...)
	if n := env.count(t, `SELECT count(*) FROM indigestible`); n != 5 {
		t.Fatalf("after recovery: %d events", n)
	}
	for deadline := time.Now().Add(5 * time.Second); gaugeValue(t, reg, "tradeops_projection_state", "indigestible", "live") != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the state gauge never showed live after recovery")
		}
	}
}

func TestLiveLagUnderLoad(t *testing.T) {
	env := newEnv(t)
	env.run(t, []Projection{AuditLog{}, AuditSeal{}})
	const rate, duration = 200, 2 * time.Second
	var mu sync.Mutex
	committed := map[string]time.Time{}
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	go func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			<-tick.C
			b, _ := json.Marshal(map[string]int{"n": i})
			res, err := env.store.Append(context.Background(), "execution-lag", eventstore.Any, eventstore.Metadata{ActorID: "u"},
				eventstore.NewEvent{Type: "execution.prepare", SchemaVersion: 1, Data: b})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			committed[res.IDs[0]] = time.Now()
			mu.Unlock()
		}
	}()
	var lags []time.Duration
	seen := map[string]bool{}
	for deadline := time.Now().Add(duration + 3*time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		rows, err := env.pool.Query(context.Background(), `SELECT event_id FROM audit_log`)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		mu.Lock()
		for _, id := range ids {
			if at, ok := committed[id]; ok && !seen[id] {
				seen[id] = true
				lags = append(lags, now.Sub(at))
			}
		}
		done := ctx.Err() != nil && len(seen) == len(committed)
		mu.Unlock()
		if done {
			break
		}
	}
	if len(lags) < rate || len(seen) != len(committed) {
		t.Fatalf("saw %d of %d events", len(seen), len(committed))
	}
	slices.Sort(lags)
	p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
	t.Logf("live lag over %d events at %d/s: p50 %s, p99 %s, max %s", len(lags), rate, p50, p99, lags[len(lags)-1])
	// The objective is 250ms p99, measured on a quiet machine by
	// internal/benchprojections (~15ms); here other packages' tests share
	// the CPU, so this only guards against a runner that stopped waking up.
	if p99 > time.Second {
		t.Fatalf("p99 lag %s", p99)
	}
}

// commitMode records the synchronous_commit its batches run under.
type commitMode struct{ seen chan string }

func (commitMode) Name() string     { return "commit_mode" }
func (commitMode) Version() int     { return 1 }
func (commitMode) Tables() []string { return nil }
func (c commitMode) Apply(ctx context.Context, tx Tx, _ Tables, _ []eventstore.Event) error {
	var mode string
	if err := tx.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&mode); err != nil {
		return err
	}
	select {
	case c.seen <- mode:
	default:
	}
	return nil
}

// Live batches commit asynchronously (no WAL flush wait): a lost commit
// loses read model and checkpoint together, and is applied again.
func TestLiveBatchesCommitAsynchronously(t *testing.T) {
	env := newEnv(t)
	env.appendOne(t, "execution-1", "user-a", "execution.prepare", map[string]any{"n": 1})
	p := commitMode{seen: make(chan string, 1)}
	env.run(t, []Projection{p})
	select {
	case mode := <-p.seen:
		if mode != "off" {
			t.Fatalf("synchronous_commit = %s in a live batch", mode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no batch ran")
	}
}

package export_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/export"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/natstest"
	"github.com/tradeops/tradeops/internal/testdb"
)

// TestMain doubles as the relay process the kill -9 test starts and kills.
func TestMain(m *testing.M) {
	if os.Getenv("EXPORT_TEST_RELAY") == "1" {
		pool, err := pgxpool.New(context.Background(), os.Getenv("EXPORT_TEST_DB"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cfg := config(os.Getenv("EXPORT_TEST_NATS"))
		err = export.NewRelay(pool, eventstore.New(pool), cfg, export.WithBatchSize(50)).Run(context.Background())
		fmt.Fprintln(os.Stderr, "relay ended:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func config(url string) export.Config {
	return export.Config{URL: url, Stream: "EVENTS", SubjectPrefix: "tradeops.events", Replicas: 1, Duplicates: 2 * time.Minute}
}

type env struct {
	pool  *pgxpool.Pool
	dbURL string
	store *eventstore.Store
	nats  *natstest.Server
	cfg   export.Config
}

func setup(t *testing.T) *env {
	t.Helper()
	srv := natstest.Start(t)
	pool, url := testdb.New(t)
	return &env{pool: pool, dbURL: url, store: eventstore.New(pool), nats: srv, cfg: config(srv.URL)}
}

// appendN appends n events to a few streams, each with a payload holding a
// secret-looking key (redacted on export) and a correlation id.
func (e *env) appendN(t *testing.T, n int, tag string) {
	t.Helper()
	for i := range n {
		md := eventstore.Metadata{ActorID: "actor", CorrelationID: fmt.Sprintf("req-%s-%d", tag, i)}
		data := fmt.Sprintf(`{"n":%d,"tag":%q,"api_secret":"canary-%s-%d"}`, i, tag, tag, i)
		if _, err := e.store.Append(context.Background(), fmt.Sprintf("test-%s-%d", tag, i%7), eventstore.Any, md,
			eventstore.NewEvent{Type: "test.event.created", SchemaVersion: 1, Data: json.RawMessage(data)}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitVisible(t)
}

// waitVisible waits until every committed event is visible to gap-free
// readers (a transaction open elsewhere on the server holds them back).
func (e *env) waitVisible(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventgen.WaitVisible(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
}

type msg struct {
	seq  uint64
	id   string
	pos  string
	body string
	hdr  nats.Header
	subj string
}

// jetStream connects to the JetStream at url for the rest of the test.
func jetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}

// streamMessages reads the whole stream.
func (e *env) streamMessages(t *testing.T, cfg export.Config) []msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := jetStream(t, cfg.URL).Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	last := s.CachedInfo().State.LastSeq
	if s.CachedInfo().State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []msg
	for {
		b, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			md, _ := m.Metadata()
			out = append(out, msg{seq: md.Sequence.Stream, id: m.Headers().Get("Nats-Msg-Id"), pos: m.Headers().Get(export.HeaderPosition),
				body: string(m.Data()), hdr: m.Headers(), subj: m.Subject()})
			if md.Sequence.Stream >= last {
				return out
			}
		}
		if b.Error() != nil {
			t.Fatal(b.Error())
		}
	}
}

func (e *env) storeEvents(t *testing.T) []eventstore.Event {
	t.Helper()
	evs, err := e.store.Read(context.Background(), eventstore.Start, 1_000_000, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// assertStreamIsStore checks that the stream holds every event of the
// store once, in store order, with the right headers and redacted bodies.
func (e *env) assertStreamIsStore(t *testing.T) {
	t.Helper()
	evs, msgs := e.storeEvents(t), e.streamMessages(t, e.cfg)
	if len(msgs) != len(evs) {
		t.Fatalf("stream holds %d messages, store %d events", len(msgs), len(evs))
	}
	for i, ev := range evs {
		m := msgs[i]
		if m.id != ev.ID || m.pos != ev.Position.String() {
			t.Fatalf("message %d (seq %d) is %s at %s, store has %s at %s", i, m.seq, m.id, m.pos, ev.ID, ev.Position)
		}
		if m.hdr.Get(export.HeaderEventType) != ev.Type || m.hdr.Get(export.HeaderStream) != ev.StreamID ||
			m.hdr.Get(export.HeaderCorrelationID) != ev.Metadata.CorrelationID || m.subj != "tradeops.events."+ev.Type {
			t.Fatalf("message %d headers %v subject %s do not match event %+v", i, m.hdr, m.subj, ev)
		}
		secret := strings.Contains(string(ev.Data), "api_secret")
		if strings.Contains(m.body, "canary") || secret != strings.Contains(m.body, `"api_secret":"[REDACTED]"`) || !strings.HasSuffix(m.body, "\n") {
			t.Fatalf("message %d body not redacted as the audit log: %s", i, m.body)
		}
	}
	res, err := export.Verify(context.Background(), e.cfg, e.store)
	if err != nil || res.Problem != nil || res.Matched != int64(len(evs)) {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

// runUntilCaughtUp runs a relay until it has exported everything visible.
func (e *env) runUntilCaughtUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := export.NewRelay(e.pool, e.store, e.cfg, export.UntilCaughtUp()).Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitExported waits until the export's lag is zero and the stream holds
// as many messages as the store events.
func (e *env) waitExported(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := export.ReadStatus(context.Background(), e.pool, e.cfg.Stream)
		if err == nil && st.Started && st.LagEvents == 0 {
			ss, err := export.Inspect(context.Background(), e.cfg)
			if err == nil && int(ss.Messages) == len(e.storeEvents(t)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("export not caught up after %s: %+v %v", within, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Concurrent writers commit out of position order, and some roll back:
// every committed event arrives once, in store order.
func TestExportOutOfOrderCommits(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- export.NewRelay(e.pool, e.store, e.cfg, export.WithBatchSize(20)).Run(ctx) }()

	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 25 {
				tx, err := e.pool.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = e.store.AppendTx(ctx, tx, fmt.Sprintf("w-%d", w), eventstore.Any, eventstore.Metadata{CorrelationID: "c"},
					eventstore.NewEvent{Type: "test.tx", SchemaVersion: 1, Data: json.RawMessage(`{"token":"canary","i":1}`)},
					eventstore.NewEvent{Type: "test.tx", SchemaVersion: 1, Data: json.RawMessage(`{"api_secret":"canary"}`)})
				if err != nil {
					t.Error(err)
				}
				// A slow transaction: later ones commit before it.
				time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
				if i%5 == 0 {
					_ = tx.Rollback(ctx)
				} else if err := tx.Commit(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	e.appendN(t, 10, "tail")
	e.waitExported(t, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(e.storeEvents(t)); n != 6*20*2+10 {
		t.Fatalf("store holds %d events", n)
	}
	e.assertStreamIsStore(t)
}

// The relay is killed with SIGKILL at random moments while events keep
// coming; after a last run the stream equals the store: no gap, no repeat.
func TestExportKill9(t *testing.T) {
	e := setup(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.appendN(t, 20, fmt.Sprintf("k%d", i))
			time.Sleep(5 * time.Millisecond)
		}
	})
	for range 8 {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "EXPORT_TEST_RELAY=1", "EXPORT_TEST_DB="+e.dbURL, "EXPORT_TEST_NATS="+e.nats.URL)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	close(stop)
	wg.Wait()
	e.runUntilCaughtUp(t)
	st, err := export.ReadStatus(context.Background(), e.pool, e.cfg.Stream)
	if err != nil || st.Published == 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	e.assertStreamIsStore(t)
}

// The broker is killed mid-export and comes back: the relay waits, then
// resumes after the stream's last message.
func TestExportBrokerRestart(t *testing.T) {
	e := setup(t)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- export.NewRelay(e.pool, e.store, e.cfg, export.WithBatchSize(50), export.WithMetrics(reg),
			export.WithAckTimeout(time.Second)).Run(ctx)
	}()
	e.appendN(t, 200, "a")
	e.nats.Kill()
	e.appendN(t, 200, "b") // the relay fails and retries meanwhile
	time.Sleep(300 * time.Millisecond)
	if err := e.nats.Restart(); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 100, "c")
	e.waitExported(t, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := counter(t, reg, "tradeops_export_errors_total"); n == 0 {
		t.Fatal("the broker outage was not counted as an error")
	}
	e.assertStreamIsStore(t)
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// One message of a window is refused (too large for the stream): the
// messages after it in the window are refused with it, the stream stops
// right before it, and once the stream accepts it the export completes in
// order.
func TestExportRejectedPublishKeepsOrder(t *testing.T) {
	e := setup(t)
	js := jetStream(t, e.cfg.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scfg := jetstream.StreamConfig{Name: e.cfg.Stream, Subjects: []string{"tradeops.events.>"}, MaxMsgSize: 2048, Duplicates: time.Minute}
	if _, err := js.CreateStream(ctx, scfg); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 40, "before")
	big := `{"blob":"` + strings.Repeat("x", 4000) + `"}`
	if _, err := e.store.Append(ctx, "big", eventstore.Any, eventstore.Metadata{}, eventstore.NewEvent{Type: "test.big", SchemaVersion: 1, Data: json.RawMessage(big)}); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 40, "after")
	done := make(chan error, 1)
	go func() { done <- export.NewRelay(e.pool, e.store, e.cfg).Run(ctx) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := export.ReadStatus(ctx, e.pool, e.cfg.Stream)
		if st.LastError != "" {
			if !strings.Contains(st.LastError, "did not store event") {
				t.Fatalf("last error: %s", st.LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refused publish was never reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	evs := e.storeEvents(t)
	msgs := e.streamMessages(t, e.cfg)
	if len(msgs) != 40 {
		t.Fatalf("stream holds %d messages; want the 40 before the refused one", len(msgs))
	}
	for i, m := range msgs {
		if m.id != evs[i].ID {
			t.Fatalf("message %d is %s, want %s", i, m.id, evs[i].ID)
		}
	}
	scfg.MaxMsgSize = -1
	if _, err := js.UpdateStream(ctx, scfg); err != nil {
		t.Fatal(err)
	}
	e.waitExported(t, 20*time.Second)
	cancel()
	<-done
	e.assertStreamIsStore(t)
}

// Two relays run at once: one publishes, the other waits for the lock.
func TestExportTwoRelays(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	var wg sync.WaitGroup
	for _, reg := range regs {
		wg.Go(func() {
			if err := export.NewRelay(e.pool, e.store, e.cfg, export.WithBatchSize(30), export.WithMetrics(reg)).Run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	e.appendN(t, 300, "x")
	e.waitExported(t, 30*time.Second)
	a, b := counter(t, regs[0], "tradeops_export_published_events_total"), counter(t, regs[1], "tradeops_export_published_events_total")
	if min(a, b) != 0 || a+b != 300 {
		t.Fatalf("published %v and %v; want one relay to publish all 300", a, b)
	}
	if x, y := counter(t, regs[0], "tradeops_export_active"), counter(t, regs[1], "tradeops_export_active"); x+y != 1 {
		t.Fatalf("active %v and %v; want exactly one", x, y)
	}
	cancel()
	wg.Wait()
	e.assertStreamIsStore(t)
}

// export verify finds a deleted and a reordered message.
func TestVerifyDetectsDeletedAndReordered(t *testing.T) {
	e := setup(t)
	e.appendN(t, 30, "v")
	e.runUntilCaughtUp(t)
	e.appendN(t, 3, "later") // not exported yet: lag, not a problem
	res, err := export.Verify(context.Background(), e.cfg, e.store)
	if err != nil || res.Problem != nil || res.Matched != 30 || res.NotYet != 3 {
		t.Fatalf("verify of an intact export: %+v %v", res, err)
	}
	evs := e.storeEvents(t)
	msgs := e.streamMessages(t, e.cfg)

	// Copy the stream, swapping messages 10 and 11, into another stream.
	js := jetStream(t, e.cfg.URL)
	ctx := context.Background()
	other := export.Config{URL: e.cfg.URL, Stream: "SWAPPED", SubjectPrefix: "swapped", Replicas: 1, Duplicates: time.Minute}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: other.Stream, Subjects: []string{"swapped.>"}}); err != nil {
		t.Fatal(err)
	}
	order := slices.Clone(msgs)
	order[10], order[11] = order[11], order[10]
	for _, m := range order {
		m.hdr.Del(jetstream.ExpectedLastMsgIDHeader)
		m.hdr.Del(jetstream.ExpectedLastSeqHeader)
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "swapped.x", Header: m.hdr, Data: []byte(m.body)}); err != nil {
			t.Fatal(err)
		}
	}
	res, err = export.Verify(ctx, other, e.store)
	if err != nil || res.Problem == nil || res.Problem.Kind != "reordered" || res.Problem.EventID != evs[10].ID {
		t.Fatalf("verify of a reordered stream: %+v %v", res.Problem, err)
	}

	s, err := js.Stream(ctx, e.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, msgs[5].seq); err != nil {
		t.Fatal(err)
	}
	res, err = export.Verify(ctx, e.cfg, e.store)
	if err != nil || res.Problem == nil || res.Problem.Kind != "missing" || res.Problem.EventID != evs[5].ID {
		t.Fatalf("verify of a stream with a deleted message: %+v %v", res.Problem, err)
	}
}

// Credentials the server refuses, or a user without the JetStream API
// permissions, stop the relay at start with a clear error that never
// shows the password.
func TestBadCredentialsAndPermissionsFailAtStart(t *testing.T) {
	conf := t.TempDir() + "/nats.conf"
	if err := os.WriteFile(conf, []byte(`authorization {
  users = [
    {user: admin, password: "admin-pw"}
    {user: narrow, password: "canary-pw-2", permissions: {publish: "other.>", subscribe: "_INBOX.>"}}
  ]
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t, "-c", conf)
	pool, _ := testdb.New(t)
	host := strings.TrimPrefix(srv.URL, "nats://")
	for name, tc := range map[string]struct{ url, want string }{
		"wrong password":     {"nats://admin:canary-pw-1@" + host, "refused the credentials"},
		"missing permission": {"nats://narrow:canary-pw-2@" + host, "lacks a permission"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := export.NewRelay(pool, eventstore.New(pool), config(tc.url)).Run(ctx)
			if !errors.Is(err, export.ErrFatal) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "canary") {
				t.Fatalf("err = %v; want a fatal error saying %q without the password", err, tc.want)
			}
		})
	}
}

// A stream filled from another database is refused at start: resuming
// after its last position would skip or repeat this store's events.
func TestStreamOfAnotherStoreIsRefused(t *testing.T) {
	e := setup(t)
	e.appendN(t, 5, "one")
	e.runUntilCaughtUp(t)
	other, _ := testdb.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := export.NewRelay(other, eventstore.New(other), e.cfg).Run(ctx)
	if !errors.Is(err, export.ErrFatal) || !strings.Contains(err.Error(), "another stream") {
		t.Fatalf("err = %v; want a fatal error asking for another stream", err)
	}
}

// The stream's last message was deleted and the checkpoint is behind the
// stream (a relay that crashed between ack and checkpoint, then someone
// deleted the message): the relay resumes from the checkpoint, the broker
// drops the re-published events as duplicates, and the export completes.
func TestDuplicatesAfterTheLastMessageWasDeleted(t *testing.T) {
	e := setup(t)
	e.appendN(t, 20, "d")
	e.runUntilCaughtUp(t)
	evs := e.storeEvents(t)
	js := jetStream(t, e.cfg.URL)
	ctx := context.Background()
	s, err := js.Stream(ctx, e.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE export_checkpoints SET transaction_id = $1::text::xid8, "offset" = $2`,
		fmt.Sprint(evs[9].TransactionID), evs[9].Offset); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 5, "e")
	reg := prometheus.NewRegistry()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := export.NewRelay(e.pool, e.store, e.cfg, export.UntilCaughtUp(), export.WithMetrics(reg)).Run(rctx); err != nil {
		t.Fatal(err)
	}
	if d := counter(t, reg, "tradeops_export_duplicate_events_total"); d != 10 {
		t.Fatalf("%v duplicates reported; want the 10 events after the checkpoint, 11 to 20", d)
	}
	msgs := e.streamMessages(t, e.cfg)
	all := e.storeEvents(t)
	want := append(slices.Clone(all[:19]), all[20:]...) // event 20 stays deleted
	if len(msgs) != len(want) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.id != want[i].ID {
			t.Fatalf("message %d is %s, want %s", i, m.id, want[i].ID)
		}
	}
}

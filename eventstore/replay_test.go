package eventstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// replayLine is one line of Replay's output.
type replayLine struct {
	Position      string              `json:"position"`
	TransactionID uint64              `json:"transaction_id"`
	Offset        int64               `json:"offset"`
	ID            string              `json:"id"`
	Stream        string              `json:"stream"`
	Version       int64               `json:"version"`
	Type          string              `json:"type"`
	SchemaVersion int                 `json:"schema_version"`
	RecordedAt    time.Time           `json:"recorded_at"`
	Metadata      eventstore.Metadata `json:"metadata"`
	Data          json.RawMessage     `json:"data"`
}

var replayKeys = []string{"data", "id", "metadata", "offset", "position", "recorded_at", "schema_version", "stream", "transaction_id", "type", "version"}

// parseReplay decodes Replay output strictly: one JSON object per line with
// exactly the documented keys.
func parseReplay(t *testing.T, out []byte) []replayLine {
	t.Helper()
	var lines []replayLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		raw := sc.Bytes()
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", len(lines)+1, err, raw)
		}
		if got := slices.Sorted(maps.Keys(keys)); !slices.Equal(got, replayKeys) {
			t.Fatalf("line %d keys %v, want %v", len(lines)+1, got, replayKeys)
		}
		var md map[string]string
		if err := json.Unmarshal(keys["metadata"], &md); err != nil {
			t.Fatalf("line %d metadata: %v", len(lines)+1, err)
		}
		for k, v := range md {
			if v == "" || !slices.Contains([]string{"actor_id", "actor_email", "correlation_id", "causation_id", "client_ip"}, k) {
				t.Fatalf("line %d: unexpected metadata %q=%q", len(lines)+1, k, v)
			}
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var l replayLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d: %v", len(lines)+1, err)
		}
		lines = append(lines, l)
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		t.Fatal("output does not end with a newline")
	}
	return lines
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return buf.String()
}

// checkReplay compares Replay output with the events Read returns.
func checkReplay(t *testing.T, lines []replayLine, want []eventstore.Event) {
	t.Helper()
	if len(lines) != len(want) {
		t.Fatalf("replay wrote %d events, Read returns %d", len(lines), len(want))
	}
	for i, l := range lines {
		e := want[i]
		if l.Position != e.Position.String() || l.TransactionID != e.TransactionID || l.Offset != e.Offset ||
			l.ID != e.ID || l.Stream != e.StreamID || l.Version != e.StreamVersion || l.Type != e.Type ||
			l.SchemaVersion != e.SchemaVersion || !l.RecordedAt.Equal(e.RecordedAt) || l.Metadata != e.Metadata {
			t.Fatalf("line %d:\n got  %+v\n want %+v", i, l, e)
		}
		if compact(t, l.Data) != compact(t, e.Data) {
			t.Fatalf("line %d data %s, want %s", i, l.Data, e.Data)
		}
		if !bytes.ContainsAny(e.Data, "\r\n") && string(l.Data) != string(e.Data) {
			t.Fatalf("line %d data %s, want the stored bytes %s", i, l.Data, e.Data)
		}
	}
}

func readAllEvents(t *testing.T, s *eventstore.Store, f eventstore.Filter) []eventstore.Event {
	t.Helper()
	all, err := s.Read(t.Context(), eventstore.Start, 100000, f)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// waitVisible waits until n events are readable: the snapshot xmin is
// server-wide, so any open write transaction on the shared server (another
// test's, a benchmark's) delays visibility of what was just committed.
func waitVisible(t *testing.T, s *eventstore.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for len(readAllEvents(t, s, eventstore.Filter{})) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d events visible after 90s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func replay(t *testing.T, s *eventstore.Store, opts eventstore.ReplayOptions) ([]replayLine, int64, eventstore.Position) {
	t.Helper()
	var buf bytes.Buffer
	n, last, err := s.Replay(t.Context(), &buf, opts)
	if err != nil {
		t.Fatalf("Replay(%+v): %v", opts, err)
	}
	lines := parseReplay(t, buf.Bytes())
	if int64(len(lines)) != n {
		t.Fatalf("Replay returned n=%d but wrote %d lines", n, len(lines))
	}
	want := opts.After
	if len(lines) > 0 {
		want, _ = eventstore.ParsePosition(lines[len(lines)-1].Position)
	}
	if last != want {
		t.Fatalf("Replay returned last=%s, want %s", last, want)
	}
	return lines, n, last
}

// seedReplay appends a varied set of events: escaping, pretty-printed and
// unicode payloads, metadata with and without fields, several streams and
// actors at distinct times.
func seedReplay(t *testing.T, s *eventstore.Store) (actors [2]string, t0 time.Time) {
	t.Helper()
	ctx := t.Context()
	t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	st := eventstore.New(s.Pool(), eventstore.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }))
	actors = [2]string{uuid.NewString(), uuid.NewString()}
	payloads := []string{
		`{"a":1}`,
		"{\n  \"pretty\": true,\r\n  \"list\": [1, 2]\n}",
		`{"s":"quote \" backslash \\ tab \t nl \n <html> & é 🙂 \u0001"}`,
		`[1,2,3]`,
		`"just a string"`,
		`{"b": 2,  "a": 1}`,
	}
	streams := []string{"user-" + uuid.NewString(), `weird "stream" \ name`, "keyring"}
	types := []string{"auth.login.success", "execution.prepare", "security.key_rotation.reencrypt"}
	for i := range 30 {
		mu.Lock()
		now = t0.Add(time.Duration(i)*time.Minute + time.Duration(i)*1234*time.Nanosecond)
		mu.Unlock()
		md := eventstore.Metadata{ActorID: actors[i%2], CorrelationID: fmt.Sprintf("req-%d", i)}
		if i%3 == 0 {
			md.ActorEmail, md.CausationID, md.ClientIP = `o'neil+"x"@example.com`, uuid.NewString(), "192.0.2.1"
		}
		if i%7 == 0 {
			md = eventstore.Metadata{}
		}
		_, err := st.Append(ctx, streams[i%3], eventstore.Any, md, eventstore.NewEvent{
			Type: types[i%3], SchemaVersion: 1 + i%2, Data: json.RawMessage(payloads[i%len(payloads)]),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return actors, t0
}

func newReplayStore(t *testing.T) *eventstore.Store {
	pool, _ := testdb.New(t)
	return eventstore.New(pool)
}

func TestReplayAll(t *testing.T) {
	s := newReplayStore(t)
	if lines, n, last := replay(t, s, eventstore.ReplayOptions{}); len(lines) != 0 || n != 0 || last != eventstore.Start {
		t.Fatalf("empty store: %d lines, n=%d, last=%s", len(lines), n, last)
	}
	seedReplay(t, s)
	waitVisible(t, s, 30)
	all := readAllEvents(t, s, eventstore.Filter{})
	for _, bs := range []int{0, 1, 7, 30, 1000} {
		lines, _, _ := replay(t, s, eventstore.ReplayOptions{BatchSize: bs})
		checkReplay(t, lines, all)
	}
}

func TestReplayFiltersLimitAfter(t *testing.T) {
	s := newReplayStore(t)
	actors, t0 := seedReplay(t, s)
	waitVisible(t, s, 30)
	all := readAllEvents(t, s, eventstore.Filter{})
	for _, f := range []eventstore.Filter{
		{Stream: "keyring"},
		{Stream: `weird "stream" \ name`},
		{TypePrefix: "auth."},
		{ActorID: actors[1]},
		{Since: t0.Add(10 * time.Minute)},
		{Until: t0.Add(10 * time.Minute)},
		{Since: t0.Add(5 * time.Minute), Until: t0.Add(20 * time.Minute), TypePrefix: "execution."},
	} {
		want := readAllEvents(t, s, f)
		if len(want) == 0 {
			t.Fatalf("filter %+v matches nothing; the test needs events", f)
		}
		lines, _, _ := replay(t, s, eventstore.ReplayOptions{Filter: f, BatchSize: 4})
		checkReplay(t, lines, want)
	}

	// Limit, then resume After the returned position: the pieces add up.
	var got []replayLine
	after := eventstore.Start
	for range 100 {
		lines, n, last := replay(t, s, eventstore.ReplayOptions{After: after, Limit: 7, BatchSize: 3})
		if n > 7 {
			t.Fatalf("Limit 7 wrote %d", n)
		}
		got = append(got, lines...)
		if n < 7 {
			break
		}
		after = last
	}
	checkReplay(t, got, all)

	lines, _, _ := replay(t, s, eventstore.ReplayOptions{After: all[9].Position})
	checkReplay(t, lines, all[10:])
	lines, _, last := replay(t, s, eventstore.ReplayOptions{After: all[len(all)-1].Position})
	if len(lines) != 0 || last != all[len(all)-1].Position {
		t.Fatalf("after the last event: %d lines, last %s", len(lines), last)
	}
	if _, _, err := s.Replay(t.Context(), io.Discard, eventstore.ReplayOptions{Limit: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
}

// TestReplayMatchesSlowPath checks the raw fast path against a pool in the
// simple protocol (text results), which takes the generic scan path, and
// rows the fast metadata copier must hand to encoding/json.
func TestReplayMatchesSlowPath(t *testing.T) {
	pool, url := testdb.New(t)
	s := eventstore.New(pool)
	seedReplay(t, s)
	ctx := t.Context()
	// Rows written by other writers: metadata with escaped keys, non-string
	// values, duplicate keys, NULL metadata and payload.
	for i, md := range []any{
		`{"actor_id":"a1","n":1,"nested":{"actor_id":"no"}}`,
		`{"actor\u005fid":"escaped-key","client_ip":"10.0.0.1"}`,
		`{"actor_id":"first","actor_id":"second"}`,
		` { "actor_email" : "spaced@example.com" } `,
		`{}`,
		nil,
	} {
		var payload any = `{"i":` + fmt.Sprint(i) + `}`
		if i == 5 {
			payload = nil
		}
		_, err := pool.Exec(ctx, `INSERT INTO `+eventstore.Table+` (uuid, payload, metadata, transaction_id, stream_id, stream_version, event_type, schema_version, recorded_at)
			VALUES ($1, $2, $3, pg_current_xact_id(), 'foreign', $4, 'user.created', 1, now())`, uuid.NewString(), payload, md, i+1)
		if err != nil {
			t.Fatal(err)
		}
	}
	waitVisible(t, s, 36)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	simplePool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer simplePool.Close()
	slow := eventstore.New(simplePool)

	var fastOut, slowOut bytes.Buffer
	if _, _, err := s.Replay(ctx, &fastOut, eventstore.ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := slow.Replay(ctx, &slowOut, eventstore.ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	fast, slowLines := parseReplay(t, fastOut.Bytes()), parseReplay(t, slowOut.Bytes())
	if len(fast) != 36 || len(slowLines) != 36 {
		t.Fatalf("%d and %d lines, want 36", len(fast), len(slowLines))
	}
	for i := range fast {
		a, b := fast[i], slowLines[i]
		a.Data, b.Data = json.RawMessage(compact(t, a.Data)), json.RawMessage(compact(t, b.Data))
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("line %d differs:\n fast %+v\n slow %+v", i, a, b)
		}
	}
	foreign := fast[30:]
	wantMD := []eventstore.Metadata{{ActorID: "a1"}, {ActorID: "escaped-key", ClientIP: "10.0.0.1"}, {ActorID: "second"}, {ActorEmail: "spaced@example.com"}, {}, {}}
	for i, l := range foreign {
		if l.Metadata != wantMD[i] {
			t.Fatalf("foreign row %d metadata %+v, want %+v", i, l.Metadata, wantMD[i])
		}
	}
	if string(foreign[5].Data) != "null" {
		t.Fatalf("NULL payload rendered as %s", foreign[5].Data)
	}
	checkReplay(t, fast[:30], readAllEvents(t, s, eventstore.Filter{})[:30])
}

func TestReplayUpcasts(t *testing.T) {
	s := newReplayStore(t)
	stream := "user-" + uuid.NewString()
	if _, err := s.Append(t.Context(), stream, eventstore.NoStream, eventstore.Metadata{},
		eventstore.NewEvent{Type: "user.created", SchemaVersion: 1, Data: json.RawMessage(`{"name":"Ann Lee"}`)},
		eventstore.NewEvent{Type: "user.created", SchemaVersion: 2, Data: json.RawMessage(`{"first":"Bob","last":"Ray"}`)},
		eventstore.NewEvent{Type: "auth.logout", SchemaVersion: 1, Data: json.RawMessage(`{"name":"x y"}`)},
	); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, s, 3)
	up := eventstore.New(s.Pool(), eventstore.WithUpcaster("user.created", func(v int, data json.RawMessage) (int, json.RawMessage, error) {
		if v != 1 {
			return v, data, nil
		}
		var p struct{ Name string }
		if err := json.Unmarshal(data, &p); err != nil {
			return 0, nil, err
		}
		first, last, _ := strings.Cut(p.Name, " ")
		return 2, json.RawMessage(fmt.Sprintf("{\n\"first\":%q,\n\"last\":%q}", first, last)), nil
	}))
	lines, _, _ := replay(t, up, eventstore.ReplayOptions{})
	checkReplay(t, lines, readAllEvents(t, up, eventstore.Filter{}))
	if lines[0].SchemaVersion != 2 || string(lines[0].Data) != `{"first":"Ann","last":"Lee"}` || lines[2].SchemaVersion != 1 {
		t.Fatalf("upcast replay: %+v", lines)
	}
}

// lockedBuffer is an io.Writer the test can read while Replay writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Count(b.buf.Bytes(), []byte{'\n'})
}

func (b *lockedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func waitLines(t *testing.T, b *lockedBuffer, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for b.lines() < n {
		if time.Now().After(deadline) {
			t.Fatalf("replay output has %d lines, want %d", b.lines(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestReplayFollow(t *testing.T) {
	s := newReplayStore(t)
	seedReplay(t, s)
	waitVisible(t, s, 30)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out lockedBuffer
	type result struct {
		n    int64
		last eventstore.Position
		err  error
	}
	done := make(chan result, 1)
	go func() {
		n, last, err := s.Replay(ctx, &out, eventstore.ReplayOptions{Follow: true, BatchSize: 8})
		done <- result{n, last, err}
	}()
	waitLines(t, &out, 30) // caught up and flushed while idle
	stream := "user-" + uuid.NewString()
	if _, err := s.Append(ctx, stream, eventstore.NoStream, eventstore.Metadata{ActorID: "late"}, eventstore.NewEvent{Type: "auth.logout", SchemaVersion: 1, Data: json.RawMessage(`{"late":true}`)}); err != nil {
		t.Fatal(err)
	}
	waitLines(t, &out, 31) // the later append shows up
	cancel()
	r := <-done
	waitVisible(t, s, 31)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("follow replay ended with %v, want context.Canceled", r.err)
	}
	all := readAllEvents(t, s, eventstore.Filter{})
	lines := parseReplay(t, out.bytes())
	checkReplay(t, lines, all)
	if r.n != 31 || r.last != all[30].Position || lines[30].Stream != stream || lines[30].Metadata.ActorID != "late" {
		t.Fatalf("follow: n=%d last=%s, line %+v", r.n, r.last, lines[30])
	}

	// Follow with a limit ends by itself once the limit is reached.
	var limited lockedBuffer
	go func() {
		n, last, err := s.Replay(t.Context(), &limited, eventstore.ReplayOptions{After: all[29].Position, Follow: true, Limit: 3, Filter: eventstore.Filter{Stream: stream}})
		done <- result{n, last, err}
	}()
	waitLines(t, &limited, 1)
	for i := range 3 {
		if _, err := s.Append(t.Context(), stream, eventstore.Any, eventstore.Metadata{}, eventstore.NewEvent{Type: "auth.logout", SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("follow with Limit 3 did not return")
	}
	if r.err != nil || r.n != 3 {
		t.Fatalf("follow with limit: n=%d err=%v", r.n, r.err)
	}
	waitVisible(t, s, 34)
	lines = parseReplay(t, limited.bytes())
	checkReplay(t, lines, readAllEvents(t, s, eventstore.Filter{Stream: stream})[:3])
}

// failingWriter fails after a few bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestReplayWriteError(t *testing.T) {
	s := newReplayStore(t)
	seedReplay(t, s)
	waitVisible(t, s, 30)
	if _, _, err := s.Replay(t.Context(), &failingWriter{n: 10}, eventstore.ReplayOptions{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Replay to a failing writer: %v", err)
	}
}

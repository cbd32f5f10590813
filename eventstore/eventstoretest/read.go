package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/eventstore"
)

func testMetadataRoundTrip(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	// A clock in a non-UTC zone with nanoseconds: recorded_at comes back in
	// UTC at microsecond precision.
	clock := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("IST", 5*3600+1800))
	st := eventstore.New(s.Pool(), eventstore.WithClock(func() time.Time { return clock }))
	md := eventstore.Metadata{
		ActorID:       uuid.NewString(),
		ActorEmail:    "ann.o'neil+ops@example.com",
		CorrelationID: "req-" + uuid.NewString(),
		CausationID:   uuid.NewString(),
		ClientIP:      "2001:db8::1",
	}
	id := uuid.NewString()
	data := `{"b": 2,  "a": [1, 2.50, "x\u00e9\"é"], "nested": {"k": null}}`
	stream := newStream("user")
	r, err := st.Append(ctx, stream, eventstore.NoStream, md,
		eventstore.NewEvent{ID: id, Type: "auth.login.success", SchemaVersion: 3, Data: json.RawMessage(data)},
		eventstore.NewEvent{Type: "auth.logout", SchemaVersion: 1, Data: json.RawMessage(`{}`)},
	)
	if err != nil {
		t.Fatal(err)
	}
	if r.IDs[0] != id {
		t.Fatalf("id %s, want %s", r.IDs[0], id)
	}
	if u, err := uuid.Parse(r.IDs[1]); err != nil || u.Version() != 7 {
		t.Fatalf("generated id %s: want a UUIDv7 (%v)", r.IDs[1], err)
	}
	wantAt := clock.Truncate(time.Microsecond).UTC()
	check := func(how string, got []eventstore.Event) {
		t.Helper()
		if len(got) != 2 {
			t.Fatalf("%s: %d events", how, len(got))
		}
		e := got[0]
		if e.ID != id || e.StreamID != stream || e.StreamVersion != 1 || e.Type != "auth.login.success" || e.SchemaVersion != 3 {
			t.Fatalf("%s: %+v", how, e)
		}
		if string(e.Data) != data {
			t.Fatalf("%s: data %s, want the appended bytes %s", how, e.Data, data)
		}
		if e.Metadata != md {
			t.Fatalf("%s: metadata %+v, want %+v", how, e.Metadata, md)
		}
		if !e.RecordedAt.Equal(wantAt) || e.RecordedAt.Location() != time.UTC {
			t.Fatalf("%s: recorded_at %s, want %s in UTC", how, e.RecordedAt, wantAt)
		}
		if e.Position == eventstore.Start {
			t.Fatalf("%s: zero position", how)
		}
		if got[1].ID != r.IDs[1] || got[1].Metadata != md || got[1].StreamVersion != 2 || got[1].SchemaVersion != 1 {
			t.Fatalf("%s: second event %+v", how, got[1])
		}
	}
	check("Read", readAllN(ctx, t, s, eventstore.Filter{}, 2))
	inStream, err := s.ReadStream(ctx, nil, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	check("ReadStream", inStream)

	// Empty metadata stays empty.
	other := newStream("keyring")
	if _, err := s.Append(ctx, other, eventstore.NoStream, eventstore.Metadata{}, ev("security.key_rotation.prune", `{}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadStream(ctx, nil, other, 0)
	if err != nil || len(got) != 1 || got[0].Metadata != (eventstore.Metadata{}) {
		t.Fatalf("empty metadata: %+v, %v", got, err)
	}
}

// auditNames are DESIGN.md section 6's event types.
var auditNames = []string{
	"auth.login.success", "auth.login.failure", "auth.logout", "auth.2fa.enabled",
	"auth.2fa.disabled", "user.created", "user.role.changed", "user.risk_profile.assigned",
	"secrets.exchange.configured", "secrets.exchange.deleted", "execution.prepare",
	"execution.binance.test_order.success", "execution.binance.test_order.error",
	"execution.ibkr.test_order.success", "execution.ibkr.test_order.error",
	"security.key_rotation.reencrypt", "security.key_rotation.prune",
}

// testEventTypeNames: the stored type is exactly the stable audit name, so
// SQL and prefix filters work on it.
func testEventTypeNames(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	stream := newStream("user")
	var batch []eventstore.NewEvent
	for _, n := range auditNames {
		batch = append(batch, ev(n, `{}`))
	}
	mustAppend(t, s, stream, eventstore.NoStream, batch...)
	got := readAllN(ctx, t, s, eventstore.Filter{}, len(auditNames))
	for i, e := range got {
		if e.Type != auditNames[i] {
			t.Fatalf("event %d: type %q, want %q", i, e.Type, auditNames[i])
		}
	}
	var stored []string
	rows, err := s.Pool().Query(ctx, `SELECT event_type FROM `+eventstore.Table+` ORDER BY stream_version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, n)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	equalIDs(t, "event_type column", stored, auditNames)
	bin := readAll(ctx, t, s, eventstore.Filter{TypePrefix: "execution.binance."})
	if len(bin) != 2 || bin[0].Type != "execution.binance.test_order.success" || bin[1].Type != "execution.binance.test_order.error" {
		t.Fatalf("TypePrefix execution.binance.: %v", bin)
	}
}

type nameV1 struct {
	Name string `json:"name"`
}

type nameV2 struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

func testUpcasting(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	stream := newStream("user")
	old := mustAppend(t, s, stream, eventstore.NoStream,
		eventstore.NewEvent{Type: "user.created", SchemaVersion: 1, Data: json.RawMessage(`{"name":"Ann Lee"}`)},
		eventstore.NewEvent{Type: "user.created", SchemaVersion: 2, Data: json.RawMessage(`{"first":"Bob","last":"Ray"}`)},
		eventstore.NewEvent{Type: "user.role.changed", SchemaVersion: 1, Data: json.RawMessage(`{"name":"admin"}`)},
	)
	var mu sync.Mutex
	calls := map[int]int{}
	v1to2 := func(v int, data json.RawMessage) (int, json.RawMessage, error) {
		mu.Lock()
		calls[v]++
		mu.Unlock()
		switch v {
		case 1:
			var p nameV1
			if err := json.Unmarshal(data, &p); err != nil {
				return 0, nil, err
			}
			first, last, _ := strings.Cut(p.Name, " ")
			out, err := json.Marshal(nameV2{first, last})
			return 2, out, err
		case 2:
			return 2, data, nil
		}
		return 0, nil, fmt.Errorf("unknown version %d", v)
	}
	up := eventstore.New(s.Pool(), eventstore.WithUpcaster("user.created", v1to2))
	checkV2 := func(how string, got []eventstore.Event) {
		t.Helper()
		if len(got) != 3 {
			t.Fatalf("%s: %d events", how, len(got))
		}
		for i, want := range []nameV2{{"Ann", "Lee"}, {"Bob", "Ray"}} {
			var p nameV2
			if got[i].SchemaVersion != 2 || json.Unmarshal(got[i].Data, &p) != nil || p != want {
				t.Fatalf("%s: event %d read as v%d %s, want v2 %+v", how, i, got[i].SchemaVersion, got[i].Data, want)
			}
			if got[i].ID != old.IDs[i] {
				t.Fatalf("%s: upcasting changed the id", how)
			}
		}
		if got[2].SchemaVersion != 1 || string(got[2].Data) != `{"name":"admin"}` {
			t.Fatalf("%s: another type was upcast: %+v", how, got[2])
		}
	}
	checkV2("Read", readAllN(ctx, t, up, eventstore.Filter{}, 3))
	inStream, err := up.ReadStream(ctx, nil, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkV2("ReadStream", inStream)
	c := newCollector()
	stop := subscribe(ctx, up, eventstore.Start, eventstore.SubscribeOptions{}, c)
	c.waitN(t, 3)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got, _ := c.snapshot()
	checkV2("Subscribe", got)

	// The stored payload is untouched: a store without the upcaster reads v1.
	raw := readAll(ctx, t, s, eventstore.Filter{})
	if raw[0].SchemaVersion != 1 || string(raw[0].Data) != `{"name":"Ann Lee"}` {
		t.Fatalf("stored event changed: %+v", raw[0])
	}

	// Chained: v1 -> v2 -> v3, one step per call.
	v3 := eventstore.New(s.Pool(), eventstore.WithUpcaster("user.created", func(v int, data json.RawMessage) (int, json.RawMessage, error) {
		if v == 2 {
			var p nameV2
			if err := json.Unmarshal(data, &p); err != nil {
				return 0, nil, err
			}
			return 3, json.RawMessage(fmt.Sprintf(`{"display":%q}`, p.Last+", "+p.First)), nil
		}
		if v == 3 {
			return 3, data, nil
		}
		return v1to2(v, data)
	}))
	got = readAll(ctx, t, v3, eventstore.Filter{Stream: stream, TypePrefix: "user.created"})
	if len(got) != 2 || got[0].SchemaVersion != 3 || string(got[0].Data) != `{"display":"Lee, Ann"}` || string(got[1].Data) != `{"display":"Ray, Bob"}` {
		t.Fatalf("chained upcast: %+v", got)
	}

	// A failing upcaster fails the read rather than handing out an old shape.
	bad := eventstore.New(s.Pool(), eventstore.WithUpcaster("user.created", func(int, json.RawMessage) (int, json.RawMessage, error) {
		return 0, nil, errors.New("cannot upcast")
	}))
	if _, err := bad.Read(ctx, eventstore.Start, 10, eventstore.Filter{}); err == nil {
		t.Fatal("Read succeeded with a failing upcaster")
	}
}

func testReadFilters(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	st := eventstore.New(s.Pool(), eventstore.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }))
	userA, userB, exec := newStream("user"), newStream("user"), newStream("execution")
	actorA, actorB, actorC := uuid.NewString(), uuid.NewString(), uuid.NewString()
	type spec struct {
		stream, typ, actor string
	}
	specs := []spec{
		{userA, "auth.login.success", actorA},                  // e0 t0
		{userB, "auth.login.failure", actorB},                  // e1 t0+1h
		{exec, "execution.prepare", actorA},                    // e2 t0+2h
		{exec, "execution.binance.test_order.success", actorA}, // e3 t0+3h
		{userA, "auth.logout", actorA},                         // e4 t0+4h
		{"keyring", "security.key_rotation.reencrypt", actorC}, // e5 t0+5h
	}
	for i, sp := range specs {
		mu.Lock()
		now = t0.Add(time.Duration(i) * time.Hour)
		mu.Unlock()
		if _, err := st.Append(ctx, sp.stream, eventstore.Any, eventstore.Metadata{ActorID: sp.actor}, ev(sp.typ, `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	e := readAllN(ctx, t, s, eventstore.Filter{}, len(specs))
	pick := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, e[i].ID)
		}
		return out
	}
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	for _, tc := range []struct {
		name string
		f    eventstore.Filter
		want []string
	}{
		{"none", eventstore.Filter{}, pick(0, 1, 2, 3, 4, 5)},
		{"stream", eventstore.Filter{Stream: userA}, pick(0, 4)},
		{"unknown stream", eventstore.Filter{Stream: "user-nobody"}, nil},
		{"type prefix auth.", eventstore.Filter{TypePrefix: "auth."}, pick(0, 1, 4)},
		{"type prefix auth.login.", eventstore.Filter{TypePrefix: "auth.login."}, pick(0, 1)},
		{"type prefix partial word", eventstore.Filter{TypePrefix: "exec"}, pick(2, 3)},
		{"full type", eventstore.Filter{TypePrefix: "auth.login.success"}, pick(0)},
		{"type prefix is not a LIKE pattern", eventstore.Filter{TypePrefix: "auth%"}, nil},
		{"type prefix underscore", eventstore.Filter{TypePrefix: "auth_login"}, nil},
		{"actor", eventstore.Filter{ActorID: actorA}, pick(0, 2, 3, 4)},
		{"since (inclusive)", eventstore.Filter{Since: h(2)}, pick(2, 3, 4, 5)},
		{"until (exclusive)", eventstore.Filter{Until: h(2)}, pick(0, 1)},
		{"since and until", eventstore.Filter{Since: h(1), Until: h(3)}, pick(1, 2)},
		{"since in another zone", eventstore.Filter{Since: h(4).In(time.FixedZone("EST", -5*3600))}, pick(4, 5)},
		{"stream and type", eventstore.Filter{Stream: exec, TypePrefix: "execution.binance."}, pick(3)},
		{"actor and since", eventstore.Filter{ActorID: actorA, Since: h(3)}, pick(3, 4)},
		{"everything", eventstore.Filter{Stream: userA, TypePrefix: "auth.", ActorID: actorA, Since: h(0), Until: h(1)}, pick(0)},
	} {
		got := readAll(ctx, t, s, tc.f)
		equalIDs(t, "filter "+tc.name, ids(got), tc.want)
	}

	// Paging under a filter from a position.
	f := eventstore.Filter{TypePrefix: "auth."}
	p1, err := s.Read(ctx, eventstore.Start, 2, f)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "page 1", ids(p1), pick(0, 1))
	p2, err := s.Read(ctx, p1[1].Position, 2, f)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "page 2", ids(p2), pick(4))
	p3, err := s.Read(ctx, p2[0].Position, 2, f)
	if err != nil || len(p3) != 0 {
		t.Fatalf("page 3: %v, %v", ids(p3), err)
	}
	// After a position, without filter.
	rest, err := s.Read(ctx, e[2].Position, 100, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "after e2", ids(rest), pick(3, 4, 5))
	for _, limit := range []int{0, -1} {
		if _, err := s.Read(ctx, eventstore.Start, limit, eventstore.Filter{}); err == nil {
			t.Fatalf("Read with limit %d succeeded", limit)
		}
	}
}

func testReadStream(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	a, b := newStream("execution"), newStream("execution")
	ra := mustAppend(t, s, a, eventstore.NoStream, evs(3, "execution.prepare")...)
	mustAppend(t, s, b, eventstore.NoStream, evs(2, "execution.prepare")...)
	ra2 := mustAppend(t, s, a, eventstore.Exact(3), evs(1, "execution.ibkr.test_order.success")...)
	want := append(append([]string(nil), ra.IDs...), ra2.IDs...)

	got, err := s.ReadStream(ctx, nil, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, got)
	equalIDs(t, "ReadStream", ids(got), want)
	got, err = s.ReadStream(ctx, s.Pool(), a, 2)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "ReadStream after version 2", ids(got), want[2:])
	if got, err = s.ReadStream(ctx, nil, a, 4); err != nil || len(got) != 0 {
		t.Fatalf("after the last version: %v, %v", ids(got), err)
	}
	if got, err = s.ReadStream(ctx, nil, "user-missing", 0); err != nil || len(got) != 0 {
		t.Fatalf("missing stream: %v, %v", ids(got), err)
	}

	// In a transaction ReadStream sees the transaction's own appends (how a
	// command reloads its aggregate), and ReadIn works on the transaction.
	tx := begin(ctx, t, s)
	r, err := s.AppendTx(ctx, tx, a, eventstore.Exact(4), testMD, ev("execution.prepare", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err = s.ReadStream(ctx, tx, a, 0)
	if err != nil || len(got) != 5 || got[4].ID != r.IDs[0] {
		t.Fatalf("ReadStream in tx: %v, %v", ids(got), err)
	}
	// ReadIn inside a read-committed transaction: b's events are below the
	// xmin as soon as no older transaction is open anywhere on the server.
	deadline := time.Now().Add(visibilityTimeout)
	for {
		in, err := s.ReadIn(ctx, tx, eventstore.Start, 100, eventstore.Filter{Stream: b})
		if err != nil || len(in) > 2 {
			t.Fatalf("ReadIn in tx: %v, %v", ids(in), err)
		}
		if len(in) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReadIn in tx: %d of 2 events visible after %s", len(in), visibilityTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := streamLen(ctx, t, s, a); n != 4 {
		t.Fatalf("outside the tx the stream has %d events, want 4", n)
	}
}

func testHead(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	head, err := s.Head(ctx)
	if err != nil || head != eventstore.Start {
		t.Fatalf("empty store: Head = %s, %v", head, err)
	}
	mustAppend(t, s, newStream("user"), eventstore.NoStream, evs(3, "user.created")...)
	all := readAllN(ctx, t, s, eventstore.Filter{}, 3)
	if head, err = s.Head(ctx); err != nil || head != all[2].Position {
		t.Fatalf("Head = %s, %v; want the last event's %s", head, err, all[2].Position)
	}
	// An open transaction with a lower xid holds Head back, like Read.
	tx := begin(ctx, t, s)
	if _, err := s.AppendTx(ctx, tx, newStream("user"), eventstore.NoStream, testMD, ev("user.created", `{}`)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, newStream("user"), eventstore.NoStream, ev("user.created", `{}`))
	if head, err = s.Head(ctx); err != nil || head != all[2].Position {
		t.Fatalf("Head = %s, %v while an older transaction is open; want %s", head, err, all[2].Position)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	all = readAllN(ctx, t, s, eventstore.Filter{}, 4)
	if head, err = s.Head(ctx); err != nil || head != all[3].Position {
		t.Fatalf("Head = %s, %v; want %s", head, err, all[3].Position)
	}
}

func testPosition(t *testing.T, _ *eventstore.Store) {
	for _, p := range []eventstore.Position{
		eventstore.Start,
		{TransactionID: 1, Offset: 0},
		{TransactionID: 739, Offset: 12},
		{TransactionID: 1<<64 - 1, Offset: 1<<63 - 1},
	} {
		got, err := eventstore.ParsePosition(p.String())
		if err != nil || got != p {
			t.Fatalf("ParsePosition(%q) = %v, %v", p.String(), got, err)
		}
	}
	if eventstore.Start.String() != "0:0" {
		t.Fatalf("Start renders as %q", eventstore.Start.String())
	}
	for _, s := range []string{"", "12", ":", "a:1", "1:b", "1:-1", "-1:1", "1:2:3", " 1:2", "18446744073709551616:0"} {
		if _, err := eventstore.ParsePosition(s); err == nil {
			t.Fatalf("ParsePosition(%q) succeeded", s)
		}
	}
	a, b, c := eventstore.Position{TransactionID: 5, Offset: 9}, eventstore.Position{TransactionID: 6, Offset: 1}, eventstore.Position{TransactionID: 6, Offset: 2}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Fatal("Position.Less must order by transaction id, then offset")
	}
	// JSON form used by checkpoint files.
	buf, err := json.Marshal(c)
	if err != nil || string(buf) != `{"transaction_id":6,"offset":2}` {
		t.Fatalf("Position JSON %s, %v", buf, err)
	}
}

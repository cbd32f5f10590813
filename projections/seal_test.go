package projections

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
)

// positions lists the stream's events in store order.
func (e testEnv) positions(t testing.TB) []eventstore.Position {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT transaction_id, "offset" FROM watermill_events ORDER BY transaction_id, "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []eventstore.Position
	for rows.Next() {
		var p eventstore.Position
		if err := rows.Scan(&p.TransactionID, &p.Offset); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func verify(t testing.TB, env testEnv, against *SealHead) Report {
	t.Helper()
	rep, err := Verify(context.Background(), env.pool, against)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

const sealedEvents = 3000

func sealedEnv(t testing.TB) (testEnv, []eventstore.Position) {
	env := newEnv(t)
	env.seed(t, sealedEvents)
	env.drain(t, AuditSeal{})
	return env, env.positions(t)
}

func TestVerifyAcceptsTheIntactChain(t *testing.T) {
	smallVerifyBatches(t)
	env, pos := sealedEnv(t)
	rep := verify(t, env, nil)
	if rep.Break != nil || rep.Verified != sealedEvents || rep.Unsealed != 0 {
		t.Fatalf("intact chain: %+v", rep)
	}
	head, err := ReadSealHead(context.Background(), env.pool)
	if err != nil {
		t.Fatal(err)
	}
	if head != rep.Head || head.Position != pos[len(pos)-1] || head.Count != sealedEvents {
		t.Fatalf("stored head %+v, recomputed %+v", head, rep.Head)
	}
	// Events appended after the seal's checkpoint are reported, not broken.
	env.appendOne(t, "user-x", "x", "auth.logout", map[string]any{})
	if rep := verify(t, env, nil); rep.Break != nil || rep.Unsealed != 1 {
		t.Fatalf("unsealed event: %+v", rep)
	}
}

// Over the simple protocol results come as text: verify takes the slow
// paths (Scan instead of raw binary values) and must find the same chain.
func TestVerifyOverTheSimpleProtocol(t *testing.T) {
	env, _ := sealedEnv(t)
	want := verify(t, env, nil)
	cfg, err := pgxpool.ParseConfig(env.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	got, err := Verify(context.Background(), pool, nil)
	if err != nil || got.Break != nil || got.Head != want.Head || got.Verified != sealedEvents {
		t.Fatalf("simple protocol: %+v, %v; want %+v", got, err, want)
	}
}

// smallVerifyBatches makes the verifier read in batches of 256 events for
// the rest of t, so a walk crosses batch boundaries and recycles its
// buffers.
func smallVerifyBatches(t *testing.T) {
	was := verifyBatch
	verifyBatch = 256
	t.Cleanup(func() { verifyBatch = was })
}

func TestVerifyReportsTheFirstBreak(t *testing.T) {
	smallVerifyBatches(t)
	for _, tc := range []struct {
		name   string
		tamper func(env testEnv, pos []eventstore.Position)
		kind   string
		at     int // index of the position the break must name
	}{
		{"payload byte flipped", func(env testEnv, pos []eventstore.Position) {
			env.exec(t, `UPDATE watermill_events SET payload = replace(payload::text, 'BINANCE', 'BINANCF')::json
				WHERE (transaction_id, "offset") = ($1, $2)`, pos[1234].TransactionID, pos[1234].Offset)
		}, "altered", 1234},
		{"actor in metadata changed", func(env testEnv, pos []eventstore.Position) {
			env.exec(t, `UPDATE watermill_events SET metadata = jsonb_set(metadata::jsonb, '{actor_id}', '"someone-else"')::json
				WHERE (transaction_id, "offset") = ($1, $2)`, pos[777].TransactionID, pos[777].Offset)
		}, "altered", 777},
		{"row deleted", func(env testEnv, pos []eventstore.Position) {
			env.exec(t, `DELETE FROM watermill_events WHERE (transaction_id, "offset") = ($1, $2)`, pos[2000].TransactionID, pos[2000].Offset)
		}, "deleted", 2000},
		{"payloads of a pair swapped", func(env testEnv, pos []eventstore.Position) {
			env.exec(t, `UPDATE watermill_events w SET payload = o.payload FROM watermill_events o
				WHERE (w.transaction_id, w."offset", o.transaction_id, o."offset") IN (($1, $2, $3, $4), ($3, $4, $1, $2))`,
				pos[1500].TransactionID, pos[1500].Offset, pos[1501].TransactionID, pos[1501].Offset)
		}, "altered", 1500},
		{"a pair of events swapped", func(env testEnv, pos []eventstore.Position) {
			env.exec(t, `UPDATE watermill_events w SET uuid = o.uuid, payload = o.payload, metadata = o.metadata,
					stream_id = o.stream_id || '~', stream_version = o.stream_version, event_type = o.event_type, recorded_at = o.recorded_at
				FROM watermill_events o
				WHERE (w.transaction_id, w."offset", o.transaction_id, o."offset") IN (($1, $2, $3, $4), ($3, $4, $1, $2))`,
				pos[600].TransactionID, pos[600].Offset, pos[900].TransactionID, pos[900].Offset)
		}, "reordered", 600},
		{"tail truncated", func(env testEnv, pos []eventstore.Position) {
			env.exec(t, `DELETE FROM watermill_events WHERE (transaction_id, "offset") >= ($1, $2)`, pos[sealedEvents-10].TransactionID, pos[sealedEvents-10].Offset)
		}, "truncated", sealedEvents - 10},
		{"row inserted", func(env testEnv, pos []eventstore.Position) {
			// A forged event placed right after event 500 in store order.
			env.exec(t, `INSERT INTO watermill_events (uuid, payload, metadata, transaction_id, "offset", stream_id, stream_version, event_type, recorded_at)
				SELECT gen_random_uuid()::text, payload, metadata, transaction_id, "offset" * 1000000, 'forged', 1, event_type, recorded_at
				FROM watermill_events WHERE (transaction_id, "offset") = ($1, $2)`, pos[500].TransactionID, pos[500].Offset)
		}, "inserted", -1},
		{"event id replaced by a longer one", func(env testEnv, pos []eventstore.Position) {
			// 36 characters, 72 bytes: longer than a link keeps in place.
			env.exec(t, `UPDATE watermill_events SET uuid = repeat('é', 36) WHERE (transaction_id, "offset") = ($1, $2)`,
				pos[321].TransactionID, pos[321].Offset)
		}, "altered", 321},
		{"seal row rewritten", func(env testEnv, pos []eventstore.Position) {
			env.exec(t, `UPDATE audit_seal SET hash = sha256(hash) WHERE (transaction_id, "offset") = ($1, $2)`, pos[42].TransactionID, pos[42].Offset)
		}, "altered", 42},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, pos := sealedEnv(t)
			tc.tamper(env, pos)
			rep := verify(t, env, nil)
			if rep.Break == nil {
				t.Fatalf("tampering not detected: %+v", rep)
			}
			want := eventstore.Position{}
			if tc.at >= 0 {
				want = pos[tc.at]
			} else { // the forged row: the one the seal never saw
				if err := env.pool.QueryRow(context.Background(), `SELECT transaction_id, "offset" FROM watermill_events WHERE stream_id = 'forged'`).
					Scan(&want.TransactionID, &want.Offset); err != nil {
					t.Fatal(err)
				}
			}
			if rep.Break.Kind != tc.kind || rep.Break.Position != want {
				t.Fatalf("got %s; want %s at %s", rep.Break, tc.kind, want)
			}
			wantVerified := int64(tc.at)
			if tc.at < 0 { // every event before the forged one verifies
				wantVerified = int64(slices.Index(env.positions(t), want))
			}
			if rep.Verified != wantVerified {
				t.Errorf("verified %d events before the break, want %d", rep.Verified, wantVerified)
			}
			t.Log(rep.Break)
		})
	}
}

func TestVerifyAgainstAnExportedHead(t *testing.T) {
	env, pos := sealedEnv(t)
	head, err := ReadSealHead(context.Background(), env.pool)
	if err != nil {
		t.Fatal(err)
	}
	// The head goes through its JSON form, as it would through a file.
	b, err := json.Marshal(head)
	if err != nil {
		t.Fatal(err)
	}
	var exported SealHead
	if err := json.Unmarshal(b, &exported); err != nil || exported != head {
		t.Fatalf("round trip %s: %+v %v", b, exported, err)
	}
	env.seed(t, 100)
	env.drain(t, AuditSeal{})
	if rep := verify(t, env, &exported); rep.Break != nil || rep.Verified != sealedEvents+100 {
		t.Fatalf("a grown chain keeps its old head: %+v", rep)
	}

	t.Run("stream and seal rewritten", func(t *testing.T) {
		// An attacker who alters an event and recomputes the whole seal
		// passes the plain verify, never the exported head.
		env.exec(t, `UPDATE watermill_events SET payload = replace(payload::text, 'BINANCE', 'BINANCF')::json
			WHERE (transaction_id, "offset") = ($1, $2)`, pos[10].TransactionID, pos[10].Offset)
		env.exec(t, `TRUNCATE audit_seal`)
		env.exec(t, `UPDATE projection_checkpoints SET transaction_id = '0', "offset" = 0 WHERE name = 'audit_seal'`)
		env.drain(t, AuditSeal{})
		if rep := verify(t, env, nil); rep.Break != nil {
			t.Fatalf("re-sealed chain: %+v", rep)
		}
		rep := verify(t, env, &exported)
		if rep.Break == nil || rep.Break.Kind != "head" || rep.Break.Position != exported.Position {
			t.Fatalf("rewritten history passed the exported head: %+v", rep.Break)
		}
	})

	t.Run("stream and seal truncated", func(t *testing.T) {
		env, pos := sealedEnv(t)
		head, _ := ReadSealHead(context.Background(), env.pool)
		cut := pos[sealedEvents-5]
		env.exec(t, `DELETE FROM watermill_events WHERE (transaction_id, "offset") >= ($1, $2)`, cut.TransactionID, cut.Offset)
		env.exec(t, `DELETE FROM audit_seal WHERE (transaction_id, "offset") >= ($1, $2)`, cut.TransactionID, cut.Offset)
		env.exec(t, `UPDATE projection_checkpoints SET transaction_id = $1, "offset" = $2 WHERE name = 'audit_seal'`,
			pos[sealedEvents-6].TransactionID, pos[sealedEvents-6].Offset)
		if rep := verify(t, env, nil); rep.Break != nil {
			t.Fatalf("consistently truncated: %+v", rep)
		}
		rep := verify(t, env, &head)
		if rep.Break == nil || rep.Break.Kind != "head" || rep.Break.Position != head.Position {
			t.Fatalf("truncation passed the exported head: %+v", rep.Break)
		}
	})
}

// The canonical encoding must never change silently: every stored seal
// would stop verifying. A deliberate change bumps sealFormat and the
// projection's version, and re-seals with --reseal.
func TestCanonicalEncodingIsStable(t *testing.T) {
	e := eventstore.Event{
		Position: eventstore.Position{TransactionID: 1234, Offset: 56}, ID: "0190f7a2-0000-7000-8000-000000000001",
		StreamID: "user-1", StreamVersion: 3, Type: "auth.login.success", SchemaVersion: 2,
		RecordedAt: time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC),
		Data:       []byte(`{"method":"password","upcast":true}`), // not hashed: the seal covers the stored form
		Stored:     eventstore.Stored{SchemaVersion: 1, Metadata: []byte(`{"actor_id":"1"}`), Data: []byte(`{"method":"password"}`)},
	}
	c := newChain(sealRow{})
	got := c.add(&e)
	const want = "fb5f1e4a705f15c85db18f0054ed6319e392f28ac826c233c1f20d8d645bb983"
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("hash of the reference event changed: %x", got)
	}
	// The verifier hashes the row as it arrives: the same link.
	raw := eventstore.RawEvent{Position: e.Position, ID: []byte(e.ID), StreamID: []byte(e.StreamID), StreamVersion: e.StreamVersion,
		Type: []byte(e.Type), SchemaVersion: int32(e.Stored.SchemaVersion), Data: e.Stored.Data, Metadata: e.Stored.Metadata,
		RecordedAt: e.RecordedAt}
	if h := newChain(sealRow{}).addRaw(&raw); h != got {
		t.Fatalf("the stored row hashes to %x, its Event to %x", h, got)
	}
	e.Stored.Data = nil // NULL differs from empty
	c2 := newChain(sealRow{})
	if h := c2.add(&e); h == got {
		t.Fatal("a NULL payload hashes like a present one")
	}
}

func TestStreamVerifierChecksEventsAsTheyGoBy(t *testing.T) {
	env, pos := sealedEnv(t)
	ctx := context.Background()
	// Intact, replayed sparsely (a filtered replay): every event counts.
	v, err := NewStreamVerifier(ctx, env.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{3, 700, 2999} {
		if brk, err := v.Check(ctx, pos[i]); brk != nil || err != nil {
			t.Fatalf("intact at %d: %v %v", i, brk, err)
		}
	}
	// A live stream outruns the seal, which catches up.
	env.seed(t, 10)
	env.drain(t, AuditSeal{})
	newest := env.positions(t)[sealedEvents+9]
	if brk, err := v.Check(ctx, newest); brk != nil || err != nil {
		t.Fatalf("newly sealed: %v %v", brk, err)
	}
	if rep, err := v.Finish(ctx); err != nil || rep.Break != nil || rep.Verified != sealedEvents+10 {
		t.Fatalf("finish: %+v %v", rep, err)
	}

	env.exec(t, `UPDATE watermill_events SET payload = replace(payload::text, 'BINANCE', 'BINANCF')::json
		WHERE (transaction_id, "offset") = ($1, $2)`, pos[1234].TransactionID, pos[1234].Offset)
	v, err = NewStreamVerifier(ctx, env.pool)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1234 {
		if brk, err := v.Check(ctx, pos[i]); brk != nil || err != nil {
			t.Fatalf("before the break, at %d: %v %v", i, brk, err)
		}
	}
	if brk, err := v.Check(ctx, pos[2000]); err != nil || brk == nil || brk.Position != pos[1234] || brk.Kind != "altered" {
		t.Fatalf("past the break: %v %v", brk, err)
	}
	if rep, err := v.Finish(ctx); err != nil || rep.Break == nil || rep.Break.Position != pos[1234] {
		t.Fatalf("finish after the break: %+v %v", rep, err)
	}
}

package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tradeops/tradeops/eventstore"
)

// wmMessage builds a message the way a watermill publisher must send an event.
func wmMessage(stream, typ string, expected int64, at time.Time, extra map[string]string) *message.Message {
	m := message.NewMessage(uuid.NewString(), message.Payload(fmt.Sprintf(`{"via":"watermill","type":%q}`, typ)))
	m.Metadata = message.Metadata{
		"stream_id":        stream,
		"event_type":       typ,
		"schema_version":   "1",
		"expected_version": strconv.FormatInt(expected, 10),
		"recorded_at":      at.Format(time.RFC3339Nano),
	}
	for k, v := range extra {
		m.Metadata[k] = v
	}
	return m
}

// publishInTx publishes msgs with a watermill-sql Publisher inside one pgx
// transaction and commits it.
func publishInTx(ctx context.Context, s *eventstore.Store, msgs ...*message.Message) error {
	return pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: eventstore.NewSchemaAdapter(0)}, watermill.NopLogger{})
		if err != nil {
			return err
		}
		return pub.Publish(eventstore.Topic, msgs...)
	})
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func testWatermillPublisher(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	stream := newStream("user")
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	actor := uuid.NewString()
	m1 := wmMessage(stream, "user.created", 0, at, map[string]string{"actor_id": actor, "correlation_id": "req-7"})
	m2 := wmMessage(stream, "user.role.changed", 0, at, map[string]string{"actor_id": actor})
	if err := publishInTx(ctx, s, m1, m2); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got := readAllN(ctx, t, s, eventstore.Filter{Stream: stream}, 2)
	equalIDs(t, "published events", ids(got), []string{m1.UUID, m2.UUID})
	checkContiguous(t, got)
	if got[0].Type != "user.created" || got[1].Type != "user.role.changed" || got[0].SchemaVersion != 1 ||
		got[0].Metadata.ActorID != actor || got[0].Metadata.CorrelationID != "req-7" || !got[0].RecordedAt.Equal(at) ||
		string(got[0].Data) != string(m1.Payload) {
		t.Fatalf("published event read back as %+v", got[0])
	}

	// The store continues the stream; the publisher continues after it.
	mustAppend(t, s, stream, eventstore.Exact(2), ev("auth.logout", `{}`))
	m4 := wmMessage(stream, "auth.logout", 3, at, nil)
	if err := publishInTx(ctx, s, m4); err != nil {
		t.Fatalf("publish at expected version 3: %v", err)
	}
	mAny := wmMessage(stream, "auth.logout", -1, at, nil)
	if err := publishInTx(ctx, s, mAny); err != nil {
		t.Fatalf("publish with expected version -1 (any): %v", err)
	}

	// A stale or too-high expected version is an error the publisher returns
	// (23502: the version check nulled stream_version), never a silent drop.
	for _, expected := range []int64{0, 3, 9} {
		err := publishInTx(ctx, s, wmMessage(stream, "auth.logout", expected, at, nil))
		if code := pgCode(err); code != "23502" && code != "23505" {
			t.Fatalf("publish at stale expected version %d: %v (code %q), want a 23502/23505 error", expected, err, code)
		}
	}

	// A lost race between two publishing transactions is a 23505 for the
	// loser, after the winner commits.
	tx1 := begin(ctx, t, s)
	pub1, err := wsql.NewPublisher(wsql.TxFromPgx(tx1), wsql.PublisherConfig{SchemaAdapter: eventstore.NewSchemaAdapter(0)}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	winner := wmMessage(stream, "auth.logout", 5, at, nil)
	if err := pub1.Publish(eventstore.Topic, winner); err != nil {
		t.Fatal(err)
	}
	loserErr := make(chan error, 1)
	go func() { loserErr <- publishInTx(ctx, s, wmMessage(stream, "auth.logout", 5, at, nil)) }()
	waitBlocked(ctx, t, s)
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-loserErr; pgCode(err) != "23505" {
		t.Fatalf("losing publisher: %v (code %q), want 23505", err, pgCode(err))
	}

	// Malformed messages are refused before reaching the database.
	noStream := wmMessage(stream, "auth.logout", -1, at, nil)
	noStream.Metadata.Set("stream_id", "")
	noType := wmMessage(stream, "", -1, at, nil)
	noVersion := wmMessage(stream, "auth.logout", -1, at, nil)
	noVersion.Metadata.Set("expected_version", "")
	badSchema := wmMessage(stream, "auth.logout", -1, at, nil)
	badSchema.Metadata.Set("schema_version", "0")
	otherStream := wmMessage(newStream("user"), "auth.logout", -1, at, nil)
	for name, msgs := range map[string][]*message.Message{
		"no stream_id": {noStream}, "no event_type": {noType}, "no expected_version": {noVersion},
		"schema_version 0": {badSchema}, "two streams": {wmMessage(stream, "auth.logout", -1, at, nil), otherStream},
	} {
		if err := publishInTx(ctx, s, msgs...); err == nil {
			t.Fatalf("%s: publish succeeded", name)
		}
	}
	err = pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: eventstore.NewSchemaAdapter(0)}, watermill.NopLogger{})
		if err != nil {
			return err
		}
		return pub.Publish("other_topic", wmMessage(stream, "auth.logout", -1, at, nil))
	})
	if err == nil {
		t.Fatal("publish to another topic succeeded")
	}

	got = readAllN(ctx, t, s, eventstore.Filter{Stream: stream}, 6)
	checkContiguous(t, got)
	equalIDs(t, "stream after publishing", ids(got)[3:], []string{m4.UUID, mAny.UUID, winner.UUID})
	if all := readAll(ctx, t, s, eventstore.Filter{}); len(all) != 6 {
		t.Fatalf("%d events in the store, want 6", len(all))
	}
}

func testWatermillSubscriber(t *testing.T, s *eventstore.Store) {
	ctx := testCtx(t)
	// Events from concurrent appends (interleaved transaction ids) and from
	// a watermill publisher.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := newStream("execution")
			for i := range 30 {
				if _, err := s.Append(ctx, stream, eventstore.Exact(int64(i)), testMD, ev("execution.prepare", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := publishInTx(ctx, s, wmMessage(newStream("user"), "user.created", 0, time.Now(), nil)); err != nil {
		t.Fatal(err)
	}
	all := readAllN(ctx, t, s, eventstore.Filter{}, 121)

	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(s.Pool()), wsql.SubscriberConfig{
		ConsumerGroup:  "g",
		SchemaAdapter:  eventstore.NewSchemaAdapter(100),
		OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
		PollInterval:   20 * time.Millisecond,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(subCtx, eventstore.Topic)
	if err != nil {
		t.Fatal(err)
	}
	receive := func(n int) []string {
		t.Helper()
		var got []string
		timeout := time.After(visibilityTimeout)
		for len(got) < n {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatal("subscriber channel closed")
				}
				if m.Metadata.Get("stream_id") == "" || m.Metadata.Get("event_type") == "" {
					t.Fatalf("message %s lacks the stream metadata: %v", m.UUID, m.Metadata)
				}
				got = append(got, m.UUID)
				m.Ack()
			case <-timeout:
				t.Fatalf("watermill subscriber received %d of %d messages", len(got), n)
			}
		}
		return got
	}
	equalIDs(t, "watermill subscriber backlog", receive(len(all)), ids(all))

	// Live events, then nothing more.
	r := mustAppend(t, s, newStream("user"), eventstore.NoStream, evs(3, "user.created")...)
	equalIDs(t, "watermill subscriber live", receive(3), r.IDs)
	select {
	case m := <-msgs:
		t.Fatalf("unexpected extra message %s", m.UUID)
	case <-time.After(100 * time.Millisecond):
	}

	// The consumer group's offset is the last event's position.
	all = readAllN(ctx, t, s, eventstore.Filter{}, 124)
	last := all[len(all)-1].Position
	deadline := time.Now().Add(5 * time.Second)
	for {
		var off int64
		var xid uint64
		if err := s.Pool().QueryRow(ctx, `SELECT offset_acked, last_processed_transaction_id FROM watermill_offsets_events WHERE consumer_group = 'g'`).Scan(&off, &xid); err != nil {
			t.Fatal(err)
		}
		if (eventstore.Position{TransactionID: xid, Offset: off}) == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer group offset %d:%d, want %s", xid, off, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

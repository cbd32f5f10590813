package eventstore_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/eventstore"
)

// QueueAppend puts Append's statement, with its version checks, into a
// batch that is one transaction with the other statements: a stream that
// exists fails NoStream, a stale exact version fails, and either failure
// rolls the batch's other writes back with it. Any is refused (its lock
// needs a round trip of its own).
func TestQueueAppend(t *testing.T) {
	s := newReplayStore(t)
	ctx := t.Context()
	if _, err := s.Pool().Exec(ctx, `CREATE TABLE side (n int)`); err != nil {
		t.Fatal(err)
	}
	md := eventstore.Metadata{ActorID: "a1", CorrelationID: "c1"}
	ev := eventstore.NewEvent{Type: "test.queued", SchemaVersion: 1, Data: []byte(`{"k":"v"}`)}
	// send appends ev to stream at expected with an INSERT into side in one batch.
	send := func(stream string, expected eventstore.ExpectedVersion) (eventstore.AppendResult, error) {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO side VALUES (1)`)
		read, err := s.QueueAppend(b, stream, expected, md, ev)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		br := s.Pool().SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return eventstore.AppendResult{}, err
		}
		return read(br)
	}
	if res, err := send("q-1", eventstore.NoStream); err != nil || res.Version != 1 || len(res.IDs) != 1 {
		t.Fatalf("new stream: %+v %v", res, err)
	}
	if res, err := send("q-1", eventstore.Exact(1)); err != nil || res.Version != 2 {
		t.Fatalf("exact: %+v %v", res, err)
	}
	for _, expected := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Exact(1), eventstore.Exact(5)} {
		if _, err := send("q-1", expected); !errors.Is(err, eventstore.ErrConcurrency) {
			t.Fatalf("expected version %d: %v", expected, err)
		}
	}
	if _, err := s.QueueAppend(&pgx.Batch{}, "q-1", eventstore.Any, md, ev); err == nil {
		t.Fatal("Any queued")
	}
	var side int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM side`).Scan(&side); err != nil || side != 2 {
		t.Fatalf("%d side rows, want 2 (the failed appends' rolled back) %v", side, err)
	}
	got, err := s.ReadStream(ctx, nil, "q-1", 0)
	if err != nil || len(got) != 2 || got[1].StreamVersion != 2 || got[1].Metadata.ActorID != "a1" || string(got[1].Data) != `{"k":"v"}` {
		t.Fatalf("stream: %+v %v", got, err)
	}
}

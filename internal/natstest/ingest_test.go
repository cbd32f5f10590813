package natstest_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tradeops/tradeops/export"
	"github.com/tradeops/tradeops/internal/natstest"
)

// ingestCase is one shape of JetStream publish; "export" is the relay's
// (export/relay.go): Nats-Msg-Id, the chained expected-last header, four
// Tradeops-* headers, a body the size of a replay line, one subject per
// event type, an ack per message, file storage.
type ingestCase struct {
	name     string
	tradeops bool // the four Tradeops-* headers
	msgID    bool
	chain    bool // Nats-Expected-Last-Msg-Id = the previous message's id
	body     int
	fast     bool // a fast-ingest batch (ADR-50, nats-server 2.14+): acks every up to 500 messages
	async    bool // persist_mode async (nats-server 2.12+): acked before it is written to the OS
	minor    int  // the nats-server 2.x release it needs
}

// BenchmarkIngest measures what storing one message costs nats-server (its
// own CPU time per message, from /proc: the figure that caps the export on
// a small box), for the export's message shape and for what could be
// changed about it. Run it against each server to compare:
//
//	NATS_SERVER_BIN=bin/nats-server go test -run '^$' -bench Ingest -benchtime 100000x ./internal/natstest
//
// Cases a server does not have are skipped. Each case runs on a fresh
// private server with an empty stream.
func BenchmarkIngest(b *testing.B) {
	for _, c := range []ingestCase{
		{name: "export", tradeops: true, msgID: true, chain: true, body: 600},
		{name: "without-tradeops-headers", msgID: true, chain: true, body: 600},
		{name: "msg-id-only", msgID: true, body: 600},
		{name: "no-headers", body: 600},
		{name: "export-body-100", tradeops: true, msgID: true, chain: true, body: 100},
		{name: "export-fast-batch", tradeops: true, msgID: true, chain: true, body: 600, fast: true, minor: 14},
		{name: "export-persist-async", tradeops: true, msgID: true, chain: true, body: 600, async: true, minor: 12},
	} {
		b.Run(c.name, func(b *testing.B) { benchIngest(b, c) })
	}
}

func benchIngest(b *testing.B, c ingestCase) {
	srv := natstest.Start(b)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	var major, minor int
	if _, err := fmt.Sscanf(nc.ConnectedServerVersion(), "%d.%d", &major, &minor); err != nil || major == 2 && minor < c.minor {
		b.Skipf("nats-server %s: needs 2.%d", nc.ConnectedServerVersion(), c.minor)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	cfg := jetstream.StreamConfig{Name: "INGEST", Subjects: []string{"ingest.>"}, Storage: jetstream.FileStorage,
		Duplicates: export.DefaultDuplicates, AllowBatchPublish: c.fast}
	if c.async {
		cfg.PersistMode = jetstream.AsyncPersistMode
	}
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}

	// Acks: one per message, or with a fast batch a flow ack
	// {"type":"ack","seq":N,...} every few hundred and the batch's PubAck
	// ({"stream":..,"seq":..,"batch":..,"count":N}) at the end.
	inbox := nc.NewInbox()
	var acked atomic.Int64
	var failed atomic.Value
	done := make(chan struct{})
	sub, err := nc.Subscribe(inbox+".>", func(m *nats.Msg) {
		d := string(m.Data)
		if strings.Contains(d, `"error"`) || strings.Contains(d, `"gap"`) {
			failed.CompareAndSwap(nil, d)
		}
		if !c.fast {
			if acked.Add(1) == int64(b.N) {
				close(done)
			}
			return
		}
		if strings.Contains(d, `"count"`) {
			close(done)
		} else if seq := ackSeq(d); seq > acked.Load() {
			acked.Store(seq)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		b.Fatal(err)
	}

	types := []string{"auth.login.success", "execution.prepare", "execution.binance.test_order.success", "secrets.exchange.configured"}
	batch := strconv.FormatInt(time.Now().UnixNano(), 36)
	msg := nats.Msg{Data: []byte(strings.Repeat("x", c.body))}
	prev := ""
	const window = 4000 // unacknowledged messages, as the relay's 4 batches of 1000
	b.ResetTimer()
	cpu := srv.CPU()
	start := time.Now()
	for i := range b.N {
		for int64(i)-acked.Load() > window {
			time.Sleep(50 * time.Microsecond)
		}
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) // the length of an event's uuid
		msg.Subject = "ingest." + types[i%len(types)]
		h := nats.Header{}
		if c.msgID {
			h.Set(jetstream.MsgIDHeader, id)
		}
		switch {
		case c.chain && prev == "":
			h.Set(jetstream.ExpectedLastSeqHeader, "0")
		case c.chain:
			h.Set(jetstream.ExpectedLastMsgIDHeader, prev)
		}
		if c.tradeops {
			h.Set(export.HeaderPosition, strconv.Itoa(1000+i/1000)+":"+strconv.Itoa(i%1000))
			h.Set(export.HeaderEventType, types[i%len(types)])
			h.Set(export.HeaderStream, "gen-1-"+strconv.Itoa(i%1000))
			h.Set(export.HeaderCorrelationID, "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
		}
		msg.Header = h
		if c.fast {
			// <inbox>.<batch>.<max messages per ack>.<gap mode>.<batch sequence>.<operation: 0 start, 1 append>.$FI
			msg.Reply = fmt.Sprintf("%s.%s.500.fail.%d.%d.$FI", inbox, batch, i+1, min(i, 1))
		} else {
			msg.Reply = inbox + "." + strconv.Itoa(i)
		}
		if err := nc.PublishMsg(&msg); err != nil {
			b.Fatal(err)
		}
		prev = id
	}
	if c.fast { // end of batch (operation 3): nothing stored, the PubAck comes back
		if err := nc.PublishMsg(&nats.Msg{Subject: "ingest.end", Reply: fmt.Sprintf("%s.%s.500.fail.%d.3.$FI", inbox, batch, b.N+1)}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d acknowledged after a minute", acked.Load(), b.N)
	}
	took, cpu := time.Since(start), srv.CPU()-cpu
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatalf("refused: %s", f)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "server-µs/msg")
	b.ReportMetric(float64(b.N)/took.Seconds(), "msgs/s")
}

// ackSeq is the "seq" of a flow ack or PubAck.
func ackSeq(d string) int64 {
	i := strings.Index(d, `"seq":`)
	if i < 0 {
		return 0
	}
	d = strings.TrimLeft(d[i+len(`"seq":`):], " ")
	n := 0
	for n < len(d) && d[n] >= '0' && d[n] <= '9' {
		n++
	}
	seq, _ := strconv.ParseInt(d[:n], 10, 64)
	return seq
}

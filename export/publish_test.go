package export

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/natstest"
)

// The acks below are as nats-server 2.9.10 writes them (spaces included).
func TestParseAck(t *testing.T) {
	for _, tc := range []struct {
		data      string
		fast      bool // read without encoding/json
		seq       uint64
		duplicate bool
		err       string
	}{
		{data: `{"stream":"P", "seq":1}`, fast: true, seq: 1},
		{data: `{"stream":"P", "seq":18446744073709551615}`, fast: true, seq: 18446744073709551615},
		{data: `{"stream":"P", "seq":7,"duplicate": true}`, fast: true, seq: 7, duplicate: true},
		{data: `{"stream":"P","seq":7,"domain":"hub","duplicate":true}`, fast: true, seq: 7, duplicate: true},
		{data: `{"stream":"P", "seq":7,"duplicate": false}`, fast: true, seq: 7},
		{data: `{"seq":3,"stream":"P"}`, seq: 3},
		{data: `{"error":{"code":400,"err_code":10070,"description":"wrong last msg ID: a"},"stream":"P","seq":0}`, err: "wrong last msg ID: a"},
		{data: `{"stream":"P", "seq":0,"error":{"code":503,"description":"x"}}`, err: "code=503"},
		{data: `{"seq":3}`, err: "invalid JetStream ack"},
		{data: `not json`, err: "invalid JetStream ack"},
	} {
		if _, ok := parseAckFast([]byte(tc.data)); ok != tc.fast {
			t.Errorf("%s: fast path %v, want %v", tc.data, ok, tc.fast)
		}
		a := parseAck(&nats.Msg{Data: []byte(tc.data)})
		switch {
		case !a.answered:
			t.Errorf("%s: not answered", tc.data)
		case tc.err != "" && (a.err == nil || !strings.Contains(a.err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.data, a.err, tc.err)
		case tc.err == "" && (a.err != nil || a.seq != tc.seq || a.duplicate != tc.duplicate):
			t.Errorf("%s: %+v, want seq %d duplicate %v", tc.data, a, tc.seq, tc.duplicate)
		}
	}
	noStream := parseAck(&nats.Msg{Header: nats.Header{"Status": {"503"}}})
	if noStream.err == nil || !strings.Contains(noStream.err.Error(), "503") {
		t.Errorf("no responders: %+v", noStream)
	}
}

// Acks pending when the connection closes are given up at once, not after
// the window's deadline (here an hour): a relay whose broker died starts
// its next session right away.
func TestWaitEndsWhenTheConnectionCloses(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// A subscriber that never answers: no ack, and no "no responders" either.
	if _, err := nc.Subscribe("silent", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	p, err := newPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	w := p.open(2, time.Hour)
	for i, id := range []string{"a", "b"} {
		if err := p.publish(w, &nats.Msg{Subject: "silent", Header: nats.Header{}}, id, eventstore.Position{Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan []pubAck, 1)
	go func() { got <- p.wait(w, nil) }()
	nc.Close()
	select {
	case acks := <-got:
		if len(acks) != 2 || acks[0].answered || acks[1].answered {
			t.Fatalf("acks %+v, want 2 unanswered", acks)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("wait did not return when the connection closed")
	}
}

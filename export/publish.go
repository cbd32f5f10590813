package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tradeops/tradeops/eventstore"
)

// publisher publishes a window of messages to JetStream asynchronously and
// collects the broker's acknowledgements: the protocol of nats.go's
// jetstream.PublishMsgAsync (a publish with a reply subject; the stream
// answers on it) without its per-message bookkeeping. nats.go keeps a
// future per message (a map entry, a timer for the ack timeout, two
// channels) and decodes each ack with encoding/json — together about a third
// of the relay's CPU per event. Here a window has one slice of results,
// one deadline and one channel, and an ack is parsed in place. Nothing is
// ever re-sent (nats.go's retry re-sends after later messages: out of order).
type publisher struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	prefix string           // the replies' subject prefix, "<inbox>."
	reply  []byte           // the reply subject under construction, reused
	closed chan nats.Status // reports the connection closing: no ack will come

	mu      sync.Mutex
	windows map[uint64]*window // by id, until settled
	nextID  uint64
}

// window is one batch published and not yet acknowledged. Its replies go
// to "<prefix><window id>.<index>".
type window struct {
	id        uint64
	ids       []string // event ids, for errors
	positions []eventstore.Position
	acks      []pubAck // by index, filled by the subscription (under publisher.mu)
	left      int      // acks still expected (under publisher.mu)
	waiting   bool     // wait is waiting: close done at left == 0 (under publisher.mu)
	done      chan struct{}
	deadline  time.Time
}

// pubAck is the broker's answer to one publish.
type pubAck struct {
	answered  bool
	seq       uint64 // the stream sequence it was stored at
	duplicate bool   // dropped as a duplicate of an earlier message
	err       error  // refused
}

func newPublisher(nc *nats.Conn) (*publisher, error) {
	p := &publisher{nc: nc, prefix: nc.NewInbox() + ".", windows: map[uint64]*window{}, closed: nc.StatusChanged(nats.CLOSED)}
	sub, err := nc.Subscribe(p.prefix+"*.*", p.answer)
	if err != nil {
		return nil, fmt.Errorf("subscribe to publish acks: %w", err)
	}
	// The server may answer a whole window (and more) before the relay
	// settles it: no pending limit on the acks.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	p.sub = sub
	return p, nil
}

// open starts a window of up to n messages, acknowledged within timeout.
func (p *publisher) open(n int, timeout time.Duration) *window {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	w := &window{id: p.nextID, ids: make([]string, 0, n), positions: make([]eventstore.Position, 0, n),
		acks: make([]pubAck, n), done: make(chan struct{}), deadline: time.Now().Add(timeout)}
	p.windows[w.id] = w
	return w
}

// publish sends msg as the next message of w (msg.Reply is overwritten;
// msg may be reused once publish returns: its header and data are copied
// into the connection's buffer).
func (p *publisher) publish(w *window, msg *nats.Msg, id string, pos eventstore.Position) error {
	i := len(w.ids)
	if i == len(w.acks) {
		return errors.New("export: window full") // a bug: open sized it
	}
	p.reply = strconv.AppendUint(append(strconv.AppendUint(append(p.reply[:0], p.prefix...), w.id, 10), '.'), uint64(i), 10)
	msg.Reply = string(p.reply)
	w.ids, w.positions = append(w.ids, id), append(w.positions, pos)
	p.mu.Lock()
	w.left++ // before the send: the ack may come back before PublishMsg returns
	p.mu.Unlock()
	return p.nc.PublishMsg(msg) // on error the session ends: w is never waited for
}

// answer records an ack (the subscription's handler, one goroutine).
func (p *publisher) answer(m *nats.Msg) {
	tail := m.Subject[len(p.prefix):]
	dot := strings.IndexByte(tail, '.')
	if dot < 0 {
		return
	}
	wid, err1 := strconv.ParseUint(tail[:dot], 10, 64)
	i, err2 := strconv.ParseUint(tail[dot+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	a := parseAck(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.windows[wid]
	if w == nil || i >= uint64(len(w.acks)) || w.acks[i].answered {
		return // settled already (timed out), or not ours
	}
	w.acks[i] = a
	if w.left--; w.left == 0 && w.waiting {
		close(w.done)
	}
}

// wait returns w's acks once every published message is answered, its
// deadline passed, the connection closed or stop is closed (unanswered
// ones are not answered). It is called once, after the last publish into w.
func (p *publisher) wait(w *window, stop <-chan struct{}) []pubAck {
	p.mu.Lock()
	done := w.left == 0
	w.waiting = true
	p.mu.Unlock()
	if !done {
		t := time.NewTimer(time.Until(w.deadline))
		select {
		case <-w.done:
		case <-t.C:
		case <-p.closed: // the session ends: once is enough
		case <-stop:
		}
		t.Stop()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.windows, w.id)
	return w.acks[:len(w.ids)]
}

// An ack as nats-server writes it: `{"stream":"S", "seq":N}`, maybe with
// `,"domain":"D"` and `,"duplicate": true` after the sequence.
var (
	ackStream    = []byte(`{"stream":"`)
	ackSeq       = []byte(`"seq":`)
	ackDuplicate = []byte(`"duplicate":`)
	ackError     = []byte(`"error"`)
)

// parseAck reads an ack: the common shape by hand (encoding/json was a
// tenth of the relay's CPU), anything else with encoding/json.
func parseAck(m *nats.Msg) pubAck {
	d := m.Data
	if len(d) == 0 {
		// A status without a body: 503 when no stream captures the subject.
		return pubAck{answered: true, err: fmt.Errorf("no JetStream answer (status %s %s)", m.Header.Get("Status"), m.Header.Get("Description"))}
	}
	if a, ok := parseAckFast(d); ok {
		return a
	}
	var r struct {
		Stream    string `json:"stream"`
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
		Error     *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	switch err := json.Unmarshal(d, &r); {
	case err != nil:
		return pubAck{answered: true, err: fmt.Errorf("invalid JetStream ack %q: %w", d, err)}
	case r.Error != nil:
		return pubAck{answered: true, err: fmt.Errorf("nats: API error: code=%d err_code=%d description=%s", r.Error.Code, r.Error.ErrCode, r.Error.Description)}
	case r.Stream == "":
		return pubAck{answered: true, err: fmt.Errorf("invalid JetStream ack %q", d)}
	}
	return pubAck{answered: true, seq: r.Seq, duplicate: r.Duplicate}
}

// parseAckFast reads a successful ack of the usual shape; ok is false for
// anything else (an error, an unexpected layout).
func parseAckFast(d []byte) (a pubAck, ok bool) {
	if !bytes.HasPrefix(d, ackStream) || bytes.Contains(d, ackError) {
		return a, false
	}
	k := bytes.Index(d, ackSeq)
	if k < 0 {
		return a, false
	}
	rest := bytes.TrimLeft(d[k+len(ackSeq):], " ")
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil {
		return a, false
	}
	a = pubAck{answered: true, seq: seq}
	if k := bytes.Index(rest[n:], ackDuplicate); k >= 0 {
		a.duplicate = bytes.HasPrefix(bytes.TrimLeft(rest[n+k+len(ackDuplicate):], " "), []byte("true"))
	}
	return a, true
}

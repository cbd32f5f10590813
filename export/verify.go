package export

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tradeops/tradeops/eventstore"
)

// Problem is the first disagreement between the stream and the store.
type Problem struct {
	// Kind is "missing" (a stored event the stream lacks), "extra" (a
	// message that is no event of the store, or not at its position),
	// "duplicated" (an event the stream holds twice) or "reordered" (an
	// event that comes after one the store orders after it).
	Kind    string
	Seq     uint64 // the stream sequence where it shows
	EventID string
	Detail  string
}

func (p *Problem) String() string {
	return fmt.Sprintf("%s: event %s at stream seq %d: %s", p.Kind, p.EventID, p.Seq, p.Detail)
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	Messages int64    // messages walked
	Matched  int64    // of them, in place
	NotYet   int64    // store events after the stream's last one (the export's lag)
	Problem  *Problem // nil when the stream is the store's prefix, in order
}

type exported struct {
	seq uint64
	id  string
	pos eventstore.Position
}

// Verify walks the stream (headers only) and the store side by side and
// reports the first missing, extra, duplicated or reordered event. The
// stream's messages up to its last sequence at the start are held in
// memory (id and position, ~100 bytes each), so a reordered event can be
// told from a missing one.
func Verify(ctx context.Context, cfg Config, events EventReader) (VerifyResult, error) {
	var res VerifyResult
	b, err := dial(cfg)
	if err != nil {
		return res, err
	}
	defer b.close()
	s, err := b.stream(ctx, cfg.Stream)
	if err != nil {
		return res, err
	}
	info := s.CachedInfo()
	var list []exported
	if info.State.Msgs > 0 {
		occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, HeadersOnly: true}
		err = each(ctx, b, cfg.Stream, occ, func(m jetstream.Msg) (bool, error) {
			md, err := m.Metadata()
			if err != nil {
				return false, err
			}
			x := exported{seq: md.Sequence.Stream, id: m.Headers().Get(jetstream.MsgIDHeader)}
			// A message without a valid position keeps the zero one: it
			// matches no event and shows as extra.
			x.pos, _ = eventstore.ParsePosition(m.Headers().Get(HeaderPosition))
			list = append(list, x)
			return x.seq < info.State.LastSeq, nil
		})
		if err != nil {
			return res, err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	res.Messages = int64(len(list))
	first := make(map[string]int, len(list))
	for i, x := range list {
		if _, ok := first[x.id]; !ok {
			first[x.id] = i
		}
	}
	st := &storeCursor{events: events}
	for k, x := range list {
		if f := first[x.id]; f != k {
			res.Problem = &Problem{Kind: "duplicated", Seq: x.seq, EventID: x.id,
				Detail: fmt.Sprintf("already at seq %d", list[f].seq)}
			return res, nil
		}
		e, ok, err := st.peek(ctx)
		if err != nil {
			return res, err
		}
		switch {
		case !ok:
			res.Problem = &Problem{Kind: "extra", Seq: x.seq, EventID: x.id,
				Detail: fmt.Sprintf("position %s: the store has no more events", x.pos)}
		case e.ID == x.id && e.Position == x.pos:
			st.next()
			res.Matched++
			continue
		case first[e.ID] > k:
			j := first[e.ID]
			res.Problem = &Problem{Kind: "reordered", Seq: list[j].seq, EventID: e.ID,
				Detail: fmt.Sprintf("position %s comes after seq %d (event %s, position %s), which the store orders after it", e.Position, x.seq, x.id, x.pos)}
		case e.Position.Less(x.pos):
			if _, later := first[e.ID]; !later {
				res.Problem = &Problem{Kind: "missing", Seq: x.seq, EventID: e.ID,
					Detail: fmt.Sprintf("position %s is not in the stream (expected before seq %d)", e.Position, x.seq)}
				break
			}
			fallthrough
		default:
			res.Problem = &Problem{Kind: "extra", Seq: x.seq, EventID: x.id,
				Detail: fmt.Sprintf("position %s is not an event of the store there (the store's next is %s at %s)", x.pos, e.ID, e.Position)}
		}
		return res, nil
	}
	for {
		_, ok, err := st.peek(ctx)
		if err != nil || !ok {
			return res, err
		}
		st.next()
		res.NotYet++
	}
}

// storeCursor walks the store in batches of cursorBatch events.
type storeCursor struct {
	events EventReader
	buf    []eventstore.Event
	i      int
	after  eventstore.Position
	done   bool
}

const cursorBatch = 5000

func (c *storeCursor) peek(ctx context.Context) (*eventstore.Event, bool, error) {
	if c.i == len(c.buf) {
		if c.done {
			return nil, false, nil
		}
		var err error
		if c.buf, err = c.events.Read(ctx, c.after, cursorBatch, eventstore.Filter{}); err != nil {
			return nil, false, err
		}
		c.i = 0
		if len(c.buf) < cursorBatch {
			c.done = true
		}
		if len(c.buf) == 0 {
			return nil, false, nil
		}
		c.after = c.buf[len(c.buf)-1].Position
	}
	return &c.buf[c.i], true, nil
}

func (c *storeCursor) next() { c.i++ }

package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tradeops/tradeops/eventstore"
)

// StreamState is what the broker says about the export's stream.
type StreamState struct {
	Exists     bool
	Messages   uint64
	Bytes      uint64
	FirstSeq   uint64
	LastSeq    uint64
	LastTime   time.Time
	Replicas   int
	Duplicates time.Duration
	// LastPosition is the store position of the last message (zero when
	// the stream is empty or its last message is gone).
	LastPosition eventstore.Position
}

// Inspect reads the stream's state without changing anything.
func Inspect(ctx context.Context, cfg Config) (StreamState, error) {
	b, err := dial(cfg)
	if err != nil {
		return StreamState{}, err
	}
	defer b.close()
	s, err := b.stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return StreamState{}, nil
	}
	if err != nil {
		return StreamState{}, err
	}
	info := s.CachedInfo()
	st := StreamState{Exists: true, Messages: info.State.Msgs, Bytes: info.State.Bytes, FirstSeq: info.State.FirstSeq,
		LastSeq: info.State.LastSeq, LastTime: info.State.LastTime, Replicas: info.Config.Replicas, Duplicates: info.Config.Duplicates}
	t, err := b.lastExported(ctx, s)
	if err != nil {
		return st, err
	}
	st.LastPosition = t.Position
	return st, nil
}

// TailOptions choose where Tail starts; the zero value prints only new
// messages.
type TailOptions struct {
	FromSeq uint64    // the first stream sequence to print
	Since   time.Time // the first message stored at or after this time
	Limit   int64     // stop after this many messages (0: until ctx ends)
}

// Tail prints the stream's message bodies (one JSON line each) to w, in
// stream order, through an ordered consumer: an ephemeral consumer the
// client recreates at the right place when a message is missed, with no
// state left on the server — what a downstream reader that keeps its own
// place (a SIEM) would use. It returns how many it printed.
func Tail(ctx context.Context, cfg Config, opts TailOptions, w io.Writer) (int64, error) {
	b, err := dial(cfg)
	if err != nil {
		return 0, err
	}
	defer b.close()
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	switch {
	case opts.FromSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, opts.FromSeq
	case !opts.Since.IsZero():
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &opts.Since
	}
	var n int64
	err = each(ctx, b, cfg.Stream, occ, func(m jetstream.Msg) (bool, error) {
		if _, err := w.Write(m.Data()); err != nil {
			return false, fmt.Errorf("tail: write: %w", err)
		}
		n++
		return opts.Limit == 0 || n < opts.Limit, nil
	})
	return n, err
}

// each calls f with the stream's messages from an ordered consumer until f
// returns false or ctx ends (nil error).
func each(ctx context.Context, b *broker, stream string, occ jetstream.OrderedConsumerConfig, f func(jetstream.Msg) (bool, error)) error {
	s, err := b.stream(ctx, stream)
	if err != nil {
		return err
	}
	c, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return b.classify("create an ordered consumer on "+stream, err)
	}
	it, err := c.Messages()
	if err != nil {
		return b.classify("consume "+stream, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("consume %s: %w", stream, err)
		}
		more, err := f(m)
		if err != nil || !more {
			return err
		}
	}
}

package eventstore

import (
	"context"
	"time"
)

// SubscribeOptions tune a catch-up subscription.
type SubscribeOptions struct {
	// BatchSize is the most events handed to the handler at once (default 1000).
	BatchSize int
	// PollInterval is how long an idle subscription waits before looking
	// again (default 20ms). A full batch is followed at once by the next read,
	// so catching up never waits; an idle poll is one index probe.
	PollInterval time.Duration
	Filter       Filter
}

// Subscribe reads every event after from, in store order and in batches, and
// hands each batch to handle until ctx ends or handle fails. The position of
// the last event of a batch is where a checkpoint may be taken; Subscribe
// itself stores nothing, so the handler owns its checkpoint (and should write
// it in the same transaction as its effects).
func (s *Store) Subscribe(ctx context.Context, from Position, opts SubscribeOptions, handle func(context.Context, []Event) error) error {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	pos := from
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		events, err := s.Read(ctx, pos, opts.BatchSize, opts.Filter)
		if err != nil {
			return err
		}
		if len(events) > 0 {
			if err := handle(ctx, events); err != nil {
				return err
			}
			pos = events[len(events)-1].Position
		}
		if len(events) == opts.BatchSize {
			timer.Reset(0)
		} else {
			timer.Reset(opts.PollInterval)
		}
	}
}

package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/projections"
)

// EventReader is what the relay needs of the event store: gap-free reads
// in store order (below the xmin horizon).
type EventReader interface {
	Read(ctx context.Context, after eventstore.Position, limit int, f eventstore.Filter) ([]eventstore.Event, error)
}

// Relay exports the event stream to a JetStream stream.
type Relay struct {
	pool       *pgxpool.Pool
	events     EventReader
	cfg        Config
	batch      int
	poll       time.Duration
	ackTimeout time.Duration
	once       bool
	log        *slog.Logger
	metrics    *metrics
}

// Option configures a Relay.
type Option func(*Relay)

// WithBatchSize sets how many events one read takes and one checkpoint
// covers (default 1000). Up to windows+1 batches are in flight, so it also
// sizes the window of unacknowledged publishes.
func WithBatchSize(n int) Option { return func(r *Relay) { r.batch = n } }

// WithPollInterval sets how often an idle relay looks for new events
// (default 10ms); right after events it looks sooner (readAhead), so the
// export's live lag is well under this interval.
func WithPollInterval(d time.Duration) Option { return func(r *Relay) { r.poll = d } }

// WithAckTimeout fails a publish the broker has not acknowledged after d
// (default 5s): a broker that stopped answering ends the session.
func WithAckTimeout(d time.Duration) Option { return func(r *Relay) { r.ackTimeout = d } }

// UntilCaughtUp makes Run return once every event visible when it read
// last is exported and acknowledged (the CLI's --once).
func UntilCaughtUp() Option { return func(r *Relay) { r.once = true } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(r *Relay) { r.log = l } }

// WithMetrics registers the relay's metrics on reg.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(r *Relay) { r.metrics = newMetrics(reg) }
}

// NewRelay returns a relay of the events in pool (read through events) to
// the stream cfg names. cfg must be valid (Config.Validate).
func NewRelay(pool *pgxpool.Pool, events EventReader, cfg Config, opts ...Option) *Relay {
	r := &Relay{pool: pool, events: events, cfg: cfg, batch: 1000, poll: 10 * time.Millisecond,
		ackTimeout: 5 * time.Second, log: slog.Default()}
	for _, o := range opts {
		o(r)
	}
	if r.metrics == nil {
		r.metrics = newMetrics(nil)
	}
	return r
}

// Run exports until ctx ends (nil), a configuration error (ErrFatal) or,
// with UntilCaughtUp, until caught up (nil). A broker or database that
// fails is waited for with backoff: the export resumes where the broker's
// stream ends, and nothing else in the process is held up.
func (r *Relay) Run(ctx context.Context) error {
	log := r.log.With("stream", r.cfg.Stream, "nats", r.cfg.Redacted())
	gauges, stopGauges := context.WithCancel(ctx)
	defer stopGauges()
	go r.refreshGauges(gauges)
	var backoff time.Duration
	var lastErr string
	for {
		progressed, err := r.session(ctx, log)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			return nil // caught up (UntilCaughtUp)
		case errors.Is(err, ErrFatal):
			log.Error("export stopped", "err", err)
			return err
		}
		r.metrics.errors.Inc()
		if err.Error() != lastErr { // a persistent failure is logged once, not every retry
			log.Error("export failed; retrying", "err", err)
			lastErr = err.Error()
		}
		recordError(ctx, r.pool, r.cfg.Stream, err)
		if progressed {
			backoff = 0
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		sleep(ctx, backoff)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// session connects, takes the export lock, reconciles the checkpoint with
// the stream and pumps events until something fails. progressed reports
// whether a batch was acknowledged.
func (r *Relay) session(ctx context.Context, log *slog.Logger) (progressed bool, err error) {
	// Connect and check the stream before the lock, so that a relay
	// waiting for the lock still reports bad credentials or permissions.
	b, err := dial(r.cfg)
	if err != nil {
		return false, err
	}
	defer b.close()
	pub, err := newPublisher(b.nc)
	if err != nil {
		return false, err
	}
	s, err := b.ensureStream(ctx, r.cfg)
	if err != nil {
		return false, err
	}
	l, err := acquire(ctx, r.pool, r.cfg.Stream, log)
	if err != nil {
		return false, err
	}
	defer l.release()
	r.metrics.active.Set(1)
	defer r.metrics.active.Set(0)
	if err := ensureCheckpoint(ctx, l.conn, r.cfg.Stream); err != nil {
		return false, err
	}
	cp, err := r.reconcile(ctx, l, b, s, log)
	if err != nil {
		return false, err
	}
	return r.pump(ctx, l, pub, cp)
}

// reconcile returns where to resume: after the stream's last message,
// which is what the broker holds, whatever the checkpoint says. The
// checkpoint is behind it after a crash between the broker's ack and the
// checkpoint's commit (nothing is published twice), and ahead of it when
// the broker lost acknowledged messages (an unreplicated NATS 2.9 stream
// whose server crashed before flushing): those are published again.
func (r *Relay) reconcile(ctx context.Context, l *lock, b *broker, s jetstream.Stream, log *slog.Logger) (Checkpoint, error) {
	cp, err := readCheckpoint(ctx, l.conn, r.cfg.Stream)
	if err != nil {
		return cp, err
	}
	t, err := b.lastExported(ctx, s)
	if err != nil {
		return cp, err
	}
	next := Checkpoint{Position: cp.Position, StreamSeq: t.Seq}
	switch {
	case t.Present:
		// The stream's last message must be this store's event: a stream
		// filled from another database, or from this one before a restore
		// reset its transaction ids, would make the relay skip or repeat
		// events silently.
		id, err := eventIDAt(ctx, l.conn, t.Position)
		if err != nil {
			return cp, err
		}
		if id != t.ID {
			return cp, fmt.Errorf("%w: the last message of stream %s (seq %d, event %s at %s) is not this database's event there: "+
				"the stream was filled from another store (or before a restore); export into another stream", ErrFatal, r.cfg.Stream, t.Seq, t.ID, t.Position)
		}
		next.Position = t.Position
		if t.Position.Less(cp.Position) {
			log.Warn("the stream ends before the checkpoint: the broker lost acknowledged messages; exporting them again",
				"checkpoint", cp.Position.String(), "stream_last", t.Position.String(), "stream_seq", t.Seq)
		}
	case t.Seq == 0:
		next.Position = eventstore.Start
		if cp.Position != eventstore.Start {
			log.Warn("the stream is new or was recreated: exporting every event from the start", "checkpoint", cp.Position.String())
		}
	default:
		log.Warn("the stream's last message is gone (deleted, purged or aged out): resuming from the checkpoint",
			"checkpoint", cp.Position.String(), "stream_seq", t.Seq)
	}
	if next != cp {
		if err := saveCheckpoint(ctx, l.conn, r.cfg.Stream, next, 0); err != nil {
			return cp, err
		}
	}
	log.Info("export running", "from", next.Position.String(), "stream_seq", next.StreamSeq)
	return next, nil
}

// quickPolls divides the poll interval for the first empty read after
// events (readAhead).
const quickPolls = 8

// windows is how many batches may wait for their acks while the next one
// is read and published: the broker's round trip (and its disk) overlap
// reading and encoding.
const windows = 4

// pump publishes batch after batch, each message chained to the one before:
// the first of a session expects the stream's last sequence, every other
// one the previous event's id as the stream's last message id, so when the
// broker refuses one, it refuses every later one of the window too and the
// stream keeps store order. While batches wait for their acks the next one
// is read (one batch ahead, readAhead) and published; the checkpoint moves
// once a whole batch is acked (saved at most every checkpointEvery).
func (r *Relay) pump(ctx context.Context, l *lock, pub *publisher, cp Checkpoint) (progressed bool, err error) {
	var (
		red      projections.Redactor
		enc      eventstore.LineEncoder
		msg      = nats.Msg{Header: nats.Header{}} // reused: publish copies it out
		prevID   string
		inflight []*window // oldest first
		p        = progress{cp: cp, saved: time.Now()}
	)
	defer func() {
		if p.dirty { // acknowledged progress not saved yet: save it on the way out
			saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if serr := r.save(saveCtx, l, &p); serr != nil && err == nil && ctx.Err() == nil {
				err = serr
			}
		}
	}()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	batches := r.readAhead(readCtx, cp.Position)
	for {
		var rb readBatch
		select {
		case rb = <-batches:
		case <-ctx.Done():
			return progressed, ctx.Err()
		}
		events := rb.events
		if rb.err != nil {
			return progressed, rb.err
		}
		if len(events) == 0 {
			switch {
			case len(inflight) > 0:
				if err := r.settle(ctx, l, pub, inflight[0], &p); err != nil {
					return progressed, err
				}
				inflight, progressed = inflight[1:], true
			case r.once:
				return progressed, nil // the deferred save writes the checkpoint
			default:
				if err := r.saveDue(ctx, l, &p); err != nil {
					return progressed, err
				}
			}
			continue
		}
		w := pub.open(len(events), r.ackTimeout)
		for i := range events {
			e := &events[i]
			if err := r.message(&msg, e, &red, &enc); err != nil {
				return progressed, err
			}
			if prevID == "" {
				setHeader(msg.Header, jetstream.ExpectedLastSeqHeader, formatSeq(p.cp.StreamSeq))
			} else {
				delete(msg.Header, jetstream.ExpectedLastSeqHeader)
				setHeader(msg.Header, jetstream.ExpectedLastMsgIDHeader, prevID)
			}
			if err := pub.publish(w, &msg, e.ID, e.Position); err != nil {
				return progressed, fmt.Errorf("publish event %s at %s: %w", e.ID, e.Position, err)
			}
			prevID = e.ID
		}
		if inflight = append(inflight, w); len(inflight) > windows {
			if err := r.settle(ctx, l, pub, inflight[0], &p); err != nil {
				return progressed, err
			}
			inflight, progressed = inflight[1:], true
		}
	}
}

// checkpointEvery bounds how often a live relay writes its checkpoint: at
// 200 events/s a batch holds an event or two, and a write per batch costs
// the database more than reading them. Where a restarted relay resumes is
// the broker's stream's last message, not the checkpoint (reconcile), so a
// checkpoint this much behind only makes `export status` that much stale.
const checkpointEvery = 100 * time.Millisecond

// progress is the checkpoint as acknowledged by the broker, and what of it
// is not saved yet.
type progress struct {
	cp      Checkpoint
	unsaved int  // events stored by the broker since the last save
	dirty   bool // cp moved since the last save
	saved   time.Time
}

// saveDue saves p if it moved and the last save is checkpointEvery old.
func (r *Relay) saveDue(ctx context.Context, l *lock, p *progress) error {
	if !p.dirty || time.Since(p.saved) < checkpointEvery {
		return nil
	}
	return r.save(ctx, l, p)
}

func (r *Relay) save(ctx context.Context, l *lock, p *progress) error {
	if err := saveCheckpoint(ctx, l.conn, r.cfg.Stream, p.cp, p.unsaved); err != nil {
		return err
	}
	p.unsaved, p.dirty, p.saved = 0, false, time.Now()
	return nil
}

// readBatch is one read of the stream: events (none when caught up) or
// the read's error.
type readBatch struct {
	events []eventstore.Event
	err    error
}

// readAhead reads batch after batch from after on its own goroutine, one
// batch ahead of the publisher, so that the database's work overlaps the
// encoding and publishing. An empty batch says "caught up"; an error ends
// it. It stops when ctx ends.
//
// Caught up, it polls: nothing tells a reader when the xmin horizon passes
// an event (a NOTIFY at commit would come before the event is readable, and
// would serialize every append's commit). Right after events it looks again
// after poll/quickPolls, doubling the wait on each empty read up to poll: a
// live stream is followed closely, an idle one costs one read per poll.
func (r *Relay) readAhead(ctx context.Context, after eventstore.Position) <-chan readBatch {
	out := make(chan readBatch, 1)
	go func() {
		wait := r.poll
		for {
			events, err := r.events.Read(ctx, after, r.batch, eventstore.Filter{})
			select {
			case out <- readBatch{events, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			if len(events) == 0 {
				sleep(ctx, wait)
				wait = min(2*wait, r.poll)
				continue
			}
			after, wait = events[len(events)-1].Position, r.poll/quickPolls
		}
	}()
	return out
}

// message makes msg e's message: the replay line of e with its payload
// redacted as in the audit log, on the subject of its type. msg is reused
// from one event to the next (its header map too): publish copies it into
// the connection's write buffer, and nothing re-sends it (the connection
// never reconnects).
func (r *Relay) message(msg *nats.Msg, e *eventstore.Event, red *projections.Redactor, enc *eventstore.LineEncoder) error {
	data, err := red.Redact(e.Data)
	if err != nil {
		return fmt.Errorf("event %s at %s: payload: %w", e.ID, e.Position, err)
	}
	redacted := *e
	redacted.Data = data
	line, err := enc.Encode(&redacted)
	if err != nil {
		return fmt.Errorf("event %s at %s: %w", e.ID, e.Position, err)
	}
	msg.Subject, msg.Data = r.cfg.Subject(e.Type), line
	setEventHeaders(msg.Header, e)
	return nil
}

// settle waits for every ack of w, then moves the checkpoint to w's last
// event (saved when due). A refused or unanswered publish ends the session:
// the messages after it were refused with it (chained), and the next
// session resumes after the stream's last message. The checkpoint still
// moves past the messages acknowledged before it, saved at once: when the
// stream's last message is gone (and the checkpoint is what the next
// session trusts), a duplicate breaks the chain — the broker drops it
// without making it the last message, so the next one is refused — and
// each session must get at least one message further.
func (r *Relay) settle(ctx context.Context, l *lock, pub *publisher, w *window, p *progress) error {
	acks := pub.wait(w, ctx.Done())
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, a := range acks {
		switch {
		case a.err == nil && a.answered && a.duplicate:
			r.metrics.duplicates.Inc()
			continue
		case a.err == nil && a.answered:
			p.unsaved++
			p.cp.StreamSeq = a.seq
			r.metrics.published.Inc()
			continue
		}
		cause := a.err
		switch {
		case cause != nil:
		case pub.nc.IsClosed():
			cause = errors.New("the connection to NATS closed before the broker acknowledged it")
		default:
			cause = fmt.Errorf("no acknowledgement within %s", r.ackTimeout)
		}
		err := fmt.Errorf("the broker did not store event %s (message %d of a batch of %d); it and the rest of the batch will be published again: %w",
			w.ids[i], i+1, len(acks), cause)
		if i > 0 {
			p.cp.Position, p.dirty = w.positions[i-1], true
			if serr := r.save(ctx, l, p); serr != nil {
				return errors.Join(err, serr)
			}
		}
		return err
	}
	p.cp.Position, p.dirty = w.positions[len(w.positions)-1], true
	return r.saveDue(ctx, l, p)
}

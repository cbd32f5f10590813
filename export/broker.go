package export

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tradeops/tradeops/eventstore"
)

// Message headers besides Nats-Msg-Id (the event id, which the broker
// deduplicates on). Position is what a relay reads back from the stream's
// last message to know where the export stands.
const (
	HeaderPosition      = "Tradeops-Position"
	HeaderEventType     = "Tradeops-Event-Type"
	HeaderStream        = "Tradeops-Stream"
	HeaderCorrelationID = "Tradeops-Correlation-Id"
)

// apiTimeout bounds each JetStream API request: a request the server drops
// (a permissions violation) is only known by its silence.
const apiTimeout = 5 * time.Second

// ErrFatal marks errors that waiting will not cure: credentials refused,
// missing permissions, JetStream not enabled, a stream configured
// differently. The relay stops on them instead of retrying.
var ErrFatal = errors.New("export: configuration error")

// broker is a connection to NATS with its JetStream context.
type broker struct {
	nc *nats.Conn
	js jetstream.JetStream
	// permErr is the last permissions violation the server reported: a
	// request it refused times out, and this says why.
	mu      sync.Mutex
	permErr error
}

// dial connects to cfg.URL.
func dial(cfg Config) (*broker, error) {
	b := &broker{}
	nc, err := nats.Connect(cfg.URL,
		nats.Name("tradeops export "+cfg.Stream),
		nats.Timeout(2*time.Second),
		// A session ends when the connection drops; the relay dials again
		// with its own backoff and reconciles, rather than letting pending
		// publishes wait out a reconnect.
		nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				b.mu.Lock()
				b.permErr = err
				b.mu.Unlock()
			}
		}))
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, fmt.Errorf("%w: NATS at %s refused the credentials: %v", ErrFatal, cfg.Redacted(), err)
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w", cfg.Redacted(), err)
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return b, nil
}

func (b *broker) close() { b.nc.Close() }

// stream looks up an existing stream.
func (b *broker) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	s, err := b.js.Stream(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, b.classify("look up stream "+name, err)
	}
	return s, err
}

// classify turns a JetStream API failure into a fatal error when waiting
// cannot help, naming what to fix.
func (b *broker) classify(what string, err error) error {
	b.mu.Lock()
	perm := b.permErr
	b.mu.Unlock()
	switch {
	case perm != nil:
		return fmt.Errorf("%w: %s: the NATS user lacks a permission: %v", ErrFatal, what, perm)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%w: %s: JetStream is not enabled on the server or account: %v", ErrFatal, what, err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.Code == 400 || apiErr.Code == 403) {
		return fmt.Errorf("%w: %s: %v", ErrFatal, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ensureStream returns the export stream, creating it when missing. An
// existing stream must capture the subjects the relay publishes to; its
// other settings are the operator's and are left alone.
func (b *broker) ensureStream(ctx context.Context, cfg Config) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout) // one budget for the lookup and the create
	defer cancel()
	s, err := b.stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        cfg.Stream,
			Description: "tradeops events, in store order (tradeops export nats)",
			Subjects:    []string{cfg.SubjectPrefix + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.Duplicates,
		})
		if err != nil {
			return nil, b.classify("create stream "+cfg.Stream, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	want := cfg.SubjectPrefix + ".>"
	for _, sub := range s.CachedInfo().Config.Subjects {
		if sub == want || sub == ">" {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: stream %s exists but does not capture %s (its subjects: %v)", ErrFatal, cfg.Stream, want, s.CachedInfo().Config.Subjects)
}

// tip is what the stream's last message says about the export.
type tip struct {
	Seq      uint64 // the stream's last sequence (0: nothing was ever stored)
	Present  bool   // the last message is still stored (not deleted or aged out)
	Position eventstore.Position
	ID       string
}

// lastExported reads the stream's last message.
func (b *broker) lastExported(ctx context.Context, s jetstream.Stream) (tip, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return tip{}, b.classify("stream info", err)
	}
	t := tip{Seq: info.State.LastSeq}
	if t.Seq == 0 || info.State.Msgs == 0 {
		return t, nil
	}
	m, err := s.GetMsg(ctx, t.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return t, nil
	}
	if err != nil {
		return tip{}, b.classify("read the stream's last message", err)
	}
	t.Present = true
	t.ID = m.Header.Get(jetstream.MsgIDHeader)
	if t.Position, err = eventstore.ParsePosition(m.Header.Get(HeaderPosition)); err != nil {
		return tip{}, fmt.Errorf("%w: the last message of stream %s (seq %d) has no valid %s header: not written by this export? %v",
			ErrFatal, s.CachedInfo().Config.Name, t.Seq, HeaderPosition, err)
	}
	return t, nil
}

// setEventHeaders sets e's headers in h (reused from the previous event).
func setEventHeaders(h nats.Header, e *eventstore.Event) {
	setHeader(h, jetstream.MsgIDHeader, e.ID)
	setHeader(h, HeaderPosition, e.Position.String())
	setHeader(h, HeaderEventType, e.Type)
	setHeader(h, HeaderStream, e.StreamID)
	if e.Metadata.CorrelationID != "" {
		setHeader(h, HeaderCorrelationID, e.Metadata.CorrelationID)
	} else {
		delete(h, HeaderCorrelationID)
	}
}

// setHeader is h.Set(key, v) reusing h's value slice: key must be in
// canonical form (the constants are).
func setHeader(h nats.Header, key, v string) {
	if vs := h[key]; len(vs) == 1 {
		vs[0] = v
		return
	}
	h[key] = []string{v}
}

func formatSeq(seq uint64) string { return strconv.FormatUint(seq, 10) }

package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
)

// decisionGroups commits the remembered-state decisions (queueRemembered)
// of concurrent requests together: one batch, one implicit transaction,
// one durable commit for a group (group commit). Under load a prepare's
// cost is mostly per transaction — the round trip, the commit, the WAL
// flush and the wake-ups around them, on both sides — and a group pays it
// once.
//
// A request is sent at once while fewer than maxGroupSenders groups are in
// flight, so a lone request waits for nobody; the requests that arrive
// while all senders are busy form the next group. Each group is decided
// when it is formed, on the state the groups before it left, and holds at
// most one request per remembered state (user, day, exchange): a request
// whose state is in flight waits for the next group, so it is decided on
// the state its predecessor wrote instead of failing the check.
//
// A group is all or nothing. When a request's statements fail — a stale
// state, a held key — nothing of the group was written: that request is
// tried again alone, the way it would have been without grouping, and the
// rest are sent again as a group, so one request's failure never becomes
// another's. A group of one is that alone attempt already.
type decisionGroups struct {
	r *Executions

	mu       sync.Mutex
	queue    []*groupRequest
	inFlight map[stateKey]bool // states of the requests being sent
	senders  int
}

// maxGroupSenders bounds the groups in flight. Four keep the disk's flush
// queue busy under load while leaving most of the pool to other work.
const maxGroupSenders = 4

// maxGroupSize bounds a group's requests (a batch of ~3 statements each).
const maxGroupSize = 64

type groupRequest struct {
	ctx    context.Context
	req    app.DecideRequest
	decide func(app.ExecutionState) (app.Decided, error)
	out    chan groupOutcome
}

// groupOutcome is a request's result: done and err as decideOnRemembered
// returns them, or alone: its group failed, try by itself.
type groupOutcome struct {
	done  bool
	alone bool
	err   error
}

// decide decides req on its remembered state in the next group and
// reports as decideOnRemembered does.
func (g *decisionGroups) decide(ctx context.Context, req app.DecideRequest, decide func(app.ExecutionState) (app.Decided, error)) (done bool, err error) {
	if _, ok := g.r.states.get(req); !ok {
		return false, nil // nothing remembered: the locking way, without queueing
	}
	gr := &groupRequest{ctx: ctx, req: req, decide: decide, out: make(chan groupOutcome, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, gr)
	start := g.senders < maxGroupSenders
	if start {
		g.senders++
	}
	g.mu.Unlock()
	if start {
		go g.send()
	}
	var o groupOutcome
	select {
	case o = <-gr.out:
	case <-ctx.Done():
		// The group may still write the decision; its state is then
		// remembered by the sender, as for any request.
		return true, ctx.Err()
	}
	if !o.alone {
		return o.done, o.err
	}
	st, ok := g.r.states.get(req)
	if !ok {
		return false, nil
	}
	return g.r.decideOnRemembered(ctx, req, st, decide)
}

// send sends groups until the queue holds none it may send.
func (g *decisionGroups) send() {
	for {
		group := g.next()
		if group == nil {
			return
		}
		g.commit(group)
		g.mu.Lock()
		for _, gr := range group {
			delete(g.inFlight, stateKeyOf(gr.req))
		}
		g.mu.Unlock()
	}
}

// next takes the next group off the queue, in arrival order, skipping the
// requests whose state is in flight; with none to take, the sender stops.
func (g *decisionGroups) next() []*groupRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight == nil {
		g.inFlight = map[stateKey]bool{}
	}
	var group []*groupRequest
	kept := g.queue[:0]
	for _, gr := range g.queue {
		k := stateKeyOf(gr.req)
		if len(group) == maxGroupSize || g.inFlight[k] {
			kept = append(kept, gr)
			continue
		}
		g.inFlight[k] = true
		group = append(group, gr)
	}
	clear(g.queue[len(kept):])
	g.queue = kept
	if group == nil {
		g.senders--
	}
	return group
}

// commit decides every request of group on its remembered state and
// writes the decisions in one batch, then tells each request its outcome.
// When a request's statements fail (its state was stale, its key held,
// its stream taken), the server rolled the whole batch back: that request
// is tried alone and the others are sent again as a group, so a stale
// state costs the others one round trip, not theirs alone. Any other
// failure (the connection, the context) sends every request alone.
func (g *decisionGroups) commit(group []*groupRequest) {
	for {
		b := &pgx.Batch{}
		writes := make([]rememberedWrite, 0, len(group))
		sent := group[:0:0]
		for _, gr := range group {
			if err := gr.ctx.Err(); err != nil {
				// Its caller has given up (its time limit): sending it
				// would fail the whole group.
				gr.out <- groupOutcome{done: true, err: err}
				continue
			}
			st, ok := g.r.states.get(gr.req)
			if !ok {
				gr.out <- groupOutcome{} // decide the locking way
				continue
			}
			w, ok, err := g.queueOne(b, gr, st)
			if !ok || err != nil {
				gr.out <- groupOutcome{done: ok, err: err}
				continue
			}
			writes, sent = append(writes, w), append(sent, gr)
		}
		if len(sent) == 0 {
			return
		}
		failed := -1
		// The first request's context bounds the group: every command's
		// context is detached from its client and ends only at its own
		// time limit.
		err := readBatch(g.r.pool.SendBatch(sent[0].ctx, b), func(br pgx.BatchResults) error {
			for i, w := range writes {
				if err := w.read(br); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		switch {
		case err == nil, len(sent) == 1:
			for i, gr := range sent {
				done, err := g.r.settle(writes[i], err)
				gr.out <- groupOutcome{done: done, err: err}
			}
			return
		case failed >= 0 && isStatementError(err):
			sent[failed].out <- groupOutcome{alone: true}
			group = append(sent[:failed:failed], sent[failed+1:]...)
		default:
			for _, gr := range sent {
				gr.out <- groupOutcome{alone: true}
			}
			return
		}
	}
}

// isStatementError tells whether err is a statement's failure reported by
// the server, which rolled the batch back, rather than the connection's.
func isStatementError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) || errors.Is(err, eventstore.ErrConcurrency)
}

// queueOne is queueRemembered for gr. A panic in its decision (a bug)
// fails gr alone, as the HTTP layer's recoverer fails the request whose
// goroutine panics, instead of the process and the whole group.
func (g *decisionGroups) queueOne(b *pgx.Batch, gr *groupRequest, st app.ExecutionState) (w rememberedWrite, ok bool, err error) {
	start := b.Len()
	defer func() {
		if p := recover(); p != nil {
			b.QueuedQueries = b.QueuedQueries[:start]
			w, ok, err = rememberedWrite{}, true, fmt.Errorf("decide execution %s: panic: %v", gr.req.Stream, p)
		}
	}()
	return g.r.queueRemembered(gr.ctx, b, gr.req, st, gr.decide)
}

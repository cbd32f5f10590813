package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/projections"
)

const auditUsage = `usage:
  tradeops audit verify [--against HEAD_FILE]
  tradeops audit head > HEAD_FILE
verify recomputes the audit seal's hash chain from the event table and reports
the first altered, deleted, inserted or reordered event (exit 1 on any break);
--against also checks that a head exported earlier is still part of the chain.`

func runAudit(ctx context.Context, getenv env, io stdio, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return showUsage(io.out, auditUsage)
	}
	if len(args) == 0 || (args[0] != "verify" && args[0] != "head") {
		return usageError("%s", auditUsage)
	}
	fs := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	against := ""
	if args[0] == "verify" {
		fs.StringVar(&against, "against", "", "a head exported by `tradeops audit head` that must still be part of the chain")
	}
	if _, err := parseFlags(fs, args[1:], io.out, auditUsage, 0); err != nil {
		return err
	}
	var head *projections.SealHead
	if against != "" {
		b, err := os.ReadFile(against)
		if err != nil {
			return usageError("--against: %v", err)
		}
		head = new(projections.SealHead)
		// The decoder's message would name our Go types; say what is wrong.
		if err := json.Unmarshal(b, head); err != nil {
			return usageError("--against %s: not a head exported by `tradeops audit head` (want its JSON object)", against)
		}
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	if args[0] == "head" {
		h, err := projections.ReadSealHead(ctx, pool)
		if err != nil {
			return err
		}
		return json.NewEncoder(io.out).Encode(h)
	}
	rep, err := projections.Verify(ctx, pool, head)
	if err != nil {
		return err
	}
	if rep.Break != nil {
		fmt.Fprintf(io.out, "audit seal BROKEN after %d verified events: %s\n", rep.Verified, rep.Break)
		return &exitError{code: 1, err: fmt.Errorf("the audit seal does not verify: %s at position %s", rep.Break.Kind, rep.Break.Position)}
	}
	fmt.Fprintf(io.out, "audit seal OK: %d events verified", rep.Verified)
	if head != nil {
		fmt.Fprintf(io.out, ", exported head %s (link %d) is part of the chain", head.Position, head.Count)
	}
	fmt.Fprintf(io.out, "; head %s event %s hash %x", rep.Head.Position, rep.Head.EventID, rep.Head.Hash)
	if rep.Unsealed > 0 {
		fmt.Fprintf(io.out, "; %d newer events not sealed yet", rep.Unsealed)
	}
	fmt.Fprintln(io.out)
	return nil
}

// sealCheck passes a replay's JSON lines through to w, verifying the audit
// seal up to each event as it goes by (`events replay --verify`). At the
// first break it stops the replay: the lines before the broken event are
// written, the error names it.
type sealCheck struct {
	ctx     context.Context
	w       io.Writer
	v       *projections.StreamVerifier
	pending []byte // an incomplete last line
	checked int64
	last    eventstore.Position
}

func newSealCheck(ctx context.Context, pool *pgxpool.Pool, w io.Writer) (*sealCheck, error) {
	v, err := projections.NewStreamVerifier(ctx, pool)
	if err != nil {
		return nil, err
	}
	return &sealCheck{ctx: ctx, w: w, v: v}, nil
}

func (c *sealCheck) Write(p []byte) (int, error) {
	c.pending = append(c.pending, p...)
	done := 0
	for {
		i := bytes.IndexByte(c.pending[done:], '\n')
		if i < 0 {
			break
		}
		var ev struct {
			Position string `json:"position"`
		}
		if err := json.Unmarshal(c.pending[done:done+i+1], &ev); err != nil {
			return 0, fmt.Errorf("verify: replayed line: %w", err)
		}
		pos, err := eventstore.ParsePosition(ev.Position)
		if err != nil {
			return 0, fmt.Errorf("verify: replayed line: %w", err)
		}
		brk, err := c.v.Check(c.ctx, pos)
		if err != nil {
			return 0, err
		}
		if brk != nil {
			_, _ = c.w.Write(c.pending[:done])
			return 0, &exitError{code: 1, err: fmt.Errorf("the audit seal does not verify: %s", brk)}
		}
		c.checked, c.last = c.checked+1, pos
		done += i + 1
	}
	if _, err := c.w.Write(c.pending[:done]); err != nil {
		return 0, err
	}
	c.pending = append(c.pending[:0], c.pending[done:]...)
	return len(p), nil
}

// finish verifies the rest of the sealed chain and reports on w; an
// interrupted --follow reports what was checked.
func (c *sealCheck) finish(ctx context.Context, w io.Writer) error {
	if ctx.Err() != nil {
		fmt.Fprintf(w, "audit seal OK up to %s (%d replayed events checked)\n", c.last, c.checked)
		return nil
	}
	rep, err := c.v.Finish(ctx)
	if err != nil {
		return err
	}
	if rep.Break != nil {
		return &exitError{code: 1, err: fmt.Errorf("the audit seal does not verify: %s", rep.Break)}
	}
	fmt.Fprintf(w, "audit seal OK: %d events verified, head %s", rep.Verified, rep.Head.Position)
	if rep.Unsealed > 0 {
		fmt.Fprintf(w, "; %d newer events not sealed yet", rep.Unsealed)
	}
	fmt.Fprintln(w)
	return nil
}

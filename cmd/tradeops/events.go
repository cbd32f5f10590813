package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/tradeops/tradeops/eventstore"
)

const eventsUsage = `usage:
  tradeops events replay [--stream S] [--type PREFIX] [--actor USER_ID] [--since RFC3339]
      [--until RFC3339] [--after XID:OFFSET] [--limit N] [--follow] [--verify]
Writes every matching event in store order as JSON lines, for forensics.`

func runEvents(ctx context.Context, getenv env, io stdio, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return showUsage(io.out, eventsUsage)
	}
	if len(args) == 0 || args[0] != "replay" {
		return usageError("%s", eventsUsage)
	}
	fs := flag.NewFlagSet("events replay", flag.ContinueOnError)
	var (
		stream = fs.String("stream", "", "only this stream (e.g. user-<uuid>)")
		typ    = fs.String("type", "", "only event types starting with this prefix (e.g. auth.)")
		actor  = fs.String("actor", "", "only events whose actor is this user id")
		since  = fs.String("since", "", "only events recorded at or after this RFC 3339 time")
		until  = fs.String("until", "", "only events recorded before this RFC 3339 time")
		after  = fs.String("after", "", "start after this checkpoint (TRANSACTION_ID:OFFSET, as printed in \"position\")")
		limit  = fs.Int64("limit", 0, "stop after N events (0 = all)")
		follow = fs.Bool("follow", false, "keep tailing new events until interrupted")
		verify = fs.Bool("verify", false, "verify the audit seal while replaying (the whole chain, whatever the filters); exit 1 at the first break")
	)
	if _, err := parseFlags(fs, args[1:], io.out, eventsUsage, 0); err != nil {
		return err
	}
	opts := eventstore.ReplayOptions{
		Filter: eventstore.Filter{Stream: *stream, TypePrefix: *typ, ActorID: *actor},
		Limit:  *limit,
		Follow: *follow,
	}
	var err error
	if opts.Filter.Since, err = parseTime("--since", *since); err != nil {
		return err
	}
	if opts.Filter.Until, err = parseTime("--until", *until); err != nil {
		return err
	}
	if *after != "" {
		if opts.After, err = eventstore.ParsePosition(*after); err != nil {
			return usageError("--after: %v", err)
		}
	}
	if *limit < 0 {
		return usageError("--limit must not be negative")
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	out := io.out
	var seal *sealCheck
	if *verify {
		if seal, err = newSealCheck(ctx, pool, io.out); err != nil {
			return err
		}
		out = seal
	}
	n, last, err := eventstore.New(pool).Replay(ctx, out, opts)
	if err != nil && !(opts.Follow && ctx.Err() != nil) {
		return err
	}
	fmt.Fprintf(io.err, "replayed %d events; last position %s\n", n, last)
	if seal != nil {
		return seal.finish(ctx, io.err)
	}
	return nil
}

func parseTime(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageError("%s: want an RFC 3339 time such as 2026-11-27T00:00:00Z", flagName)
	}
	return t, nil
}

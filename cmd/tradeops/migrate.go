package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/migrations"
)

func runMigrate(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(io.err)
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Release()
	v, err := migrations.Apply(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if err := postgres.CheckXIDHorizon(ctx, conn.Conn()); err != nil {
		return err
	}
	fmt.Fprintf(io.out, "schema at version %d\n", v)
	return nil
}

package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/migrations"
)

const migrateUsage = `usage: tradeops migrate
Applies the embedded migrations to DATABASE_URL and exits.`

func runMigrate(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if _, err := parseFlags(fs, args, io.out, migrateUsage, 0); err != nil {
		return err
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

package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

// BenchmarkReencrypt10k measures a rotation over 10,000 Binance secrets
// (20,000 sealed values: API key and secret), dry run and apply, on
// PostgreSQL, in the default batches of 500 records. Each apply starts from
// the secrets under the old key only.
// Run: go test ./adapters/postgres -run '^$' -bench Reencrypt10k -benchtime 3x
func BenchmarkReencrypt10k(b *testing.B) {
	const secrets = 10_000
	r := newRotation(b)
	ctx := context.Background()
	rows, err := r.pool.Query(ctx, `INSERT INTO users (id, email, role, risk_profile, password_hash, tokens_valid_after, created_at, updated_at)
		SELECT gen_random_uuid(), 'bench' || i || '@example.com', 'operator', 'model2', 'h', now(), now(), now()
		FROM generate_series(1, $1) i RETURNING id::text`, secrets)
	if err != nil {
		b.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	copyRows, now := make([][]any, len(ids)), time.Now()
	for i, id := range ids {
		fields := map[string]app.Sealed{}
		for _, f := range []string{"api_key", "api_secret"} {
			s, err := r.oldK.Seal(fmt.Appendf(nil, "%s-%d-%s", f, i, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"),
				app.SecretBinding{Owner: id, Purpose: string(domain.ExchangeBinance), Field: f})
			if err != nil {
				b.Fatal(err)
			}
			fields[f] = s
		}
		raw, _ := json.Marshal(fields)
		copyRows[i] = []any{id, string(domain.ExchangeBinance), string(raw), now}
	}
	if _, err := r.pool.CopyFrom(ctx, pgx.Identifier{"exchange_secrets"}, []string{"user_id", "exchange", "fields", "updated_at"}, pgx.CopyFromRows(copyRows)); err != nil {
		b.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, `CREATE TABLE bench_original AS SELECT user_id, exchange, fields FROM exchange_secrets; ANALYZE exchange_secrets`); err != nil {
		b.Fatal(err)
	}
	const values = 2 * secrets
	run := func(b *testing.B, dryRun bool) {
		for b.Loop() {
			if !dryRun {
				b.StopTimer()
				if _, err := r.pool.Exec(ctx, `UPDATE exchange_secrets e SET fields = o.fields FROM bench_original o
					WHERE e.user_id = o.user_id AND e.exchange = o.exchange`); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			res := r.reencrypt(dryRun)
			if res.Scanned != values || res.Updated != values {
				b.Fatalf("%+v", res)
			}
		}
		b.ReportMetric(float64(values)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
	}
	b.Run("dry_run", func(b *testing.B) { run(b, true) })
	b.Run("apply", func(b *testing.B) { run(b, false) })
}

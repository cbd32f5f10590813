// Package eventgen fills the event table fast, for tests and benchmarks:
// set-based INSERT ... SELECT generate_series straight into the store's
// table, with the metadata Store.Append writes, instead of a million appends.
// WaitVisible then waits until readers can see them.
package eventgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/tradeops/tradeops/eventstore"
)

// ActorID is the user id of generated actor k (a UUID, like real ones).
func ActorID(k int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", k) }

// ActorEmail is the email of generated actor k.
func ActorEmail(k int) string { return fmt.Sprintf("user%d@example.com", k) }

// insertSQL generates $2 events; event i is caused by actor i % $3, in one of
// 1000 streams of this batch ($1 tags them, so stream versions stay unique),
// and recorded i ms after a base time. Execution payloads have the domain's
// shape (the daily_risk_compare projection reads them): even actors are under
// model2, odd ones under loose, and one prepare in seven is rejected where
// the shadow profile would have accepted it. Every execution payload holds
// "BINANCE" (a test order's only as an extra field), which tamper tests edit.
const insertSQL = `
INSERT INTO ` + eventstore.Table + ` (uuid, payload, metadata, transaction_id, stream_id, stream_version, event_type, schema_version, recorded_at)
SELECT g.id, g.payload, json_build_object(
		'stream_id', g.stream, 'event_type', g.type, 'schema_version', '1', 'expected_version', '-1',
		'recorded_at', to_char(g.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'actor_id', g.actor_id, 'actor_email', g.actor_email, 'correlation_id', gen_random_uuid()::text,
		'client_ip', '10.1.' || (g.k % 250) || '.' || (g.i % 250)),
	pg_current_xact_id(), g.stream, g.i / 1000 + 1, g.type, 1, g.at
FROM (
	SELECT i, k, gen_random_uuid()::text AS id,
		'gen-' || $1 || '-' || (i % 1000) AS stream,
		'00000000-0000-4000-8000-' || lpad(k::text, 12, '0') AS actor_id,
		'user' || k || '@example.com' AS actor_email,
		$4::timestamptz + i * interval '1 millisecond' AS at,
		CASE i % 4 WHEN 0 THEN 'auth.login.success' WHEN 1 THEN 'execution.prepare'
			WHEN 2 THEN 'execution.binance.test_order.success' ELSE 'secrets.exchange.configured' END AS type,
		CASE i % 4
			WHEN 0 THEN json_build_object('email', 'user' || k || '@example.com',
				'user_id', '00000000-0000-4000-8000-' || lpad(k::text, 12, '0'), 'method', 'password')
			WHEN 1 THEN json_build_object('execution_id', gen_random_uuid(),
				'user_id', '00000000-0000-4000-8000-' || lpad(k::text, 12, '0'), 'exchange', 'BINANCE', 'symbol', 'BTCUSDT',
				'side', 'BUY', 'order_type', 'MARKET', 'qty', '0.01', 'reference_price', (60000 + i % 1000)::text,
				'notional', ((60000 + i % 1000) * 0.01)::text, 'profile', profile, 'decision', decision,
				'failed_checks', CASE decision WHEN 'accepted' THEN '[]'::json ELSE '["RISK_DAILY_ORDER_COUNT"]'::json END,
				'shadow', json_build_object('profile', CASE profile WHEN 'model2' THEN 'loose' ELSE 'model2' END,
					'decision', 'accepted', 'failed_checks', '[]'::json),
				'secret_configured', true, 'day', day)
			WHEN 2 THEN json_build_object('execution_id', gen_random_uuid(), 'exchange', 'BINANCE',
				'user_id', '00000000-0000-4000-8000-' || lpad(k::text, 12, '0'), 'symbol', 'BTCUSDT', 'side', 'BUY',
				'order_type', 'MARKET', 'qty', '0.01', 'mode', 'testnet', 'profile', profile, 'day', day)
			ELSE json_build_object('user_id', '00000000-0000-4000-8000-' || lpad(k::text, 12, '0'), 'exchange', 'BINANCE', 'api_key_hint', '****' || lpad((i % 10000)::text, 4, '0'), 'key_id', 'a1b2c3d4e5f60718')
		END AS payload
	FROM (SELECT i, i % $3 AS k,
			to_char(($4::timestamptz + i * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
			CASE i % $3 % 2 WHEN 0 THEN 'model2' ELSE 'loose' END AS profile,
			CASE WHEN i % 7 = 1 THEN 'rejected' ELSE 'accepted' END AS decision
		FROM generate_series($5::bigint, $5::bigint + $2 - 1) AS i) s
) g`

// Insert generates n events caused by `actors` users, chunk events per
// transaction (so positions span many transaction ids, like real traffic).
func Insert(ctx context.Context, q eventstore.Querier, n, chunk, actors int) error {
	tag := make([]byte, 4)
	_, _ = rand.Read(tag)
	var base string
	if err := q.QueryRow(ctx, `SELECT (now() - interval '30 days')::text`).Scan(&base); err != nil {
		return fmt.Errorf("eventgen: %w", err)
	}
	for from := 0; from < n; from += chunk {
		size := min(chunk, n-from)
		if _, err := q.Exec(ctx, insertSQL, hex.EncodeToString(tag), size, actors, base, from); err != nil {
			return fmt.Errorf("eventgen: insert: %w", err)
		}
	}
	return nil
}

// WaitVisible waits until every event in the table is visible to gap-free
// readers (below the snapshot's xmin), or until ctx ends. The xmin is
// cluster-wide: a write transaction left open in any database of the server
// — another package's test — hides newer events from every reader.
func WaitVisible(ctx context.Context, q eventstore.Querier) error {
	for {
		var hidden bool
		err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+eventstore.Table+
			` WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot()))`).Scan(&hidden)
		if err != nil || !hidden {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("events stay invisible to readers: a transaction elsewhere on the server holds back the snapshot's xmin: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ScanAll reads every event row in one plain SELECT, decoding nothing: the
// baseline the benchmarks compare the read side and the export with.
func ScanAll(ctx context.Context, q eventstore.Querier) error {
	rows, err := q.Query(ctx, `SELECT "offset", transaction_id, uuid, stream_id, stream_version, event_type, schema_version,
		payload::text, metadata::text, recorded_at FROM `+eventstore.Table)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	rows.Close()
	return rows.Err()
}

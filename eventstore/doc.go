// Package eventstore is tradeops' PostgreSQL event store.
//
// Every event lives in one table, which is also a watermill-sql topic table
// (DefaultPostgreSQLSchema's columns plus stream_id, stream_version,
// event_type, schema_version and recorded_at): the custom SchemaAdapter in
// schema.go defines it, so a watermill Publisher or Subscriber pointed at the
// topic "events" sees exactly the store's events in the store's order.
//
// Ordering is (transaction_id xid8, offset). Readers only read rows whose
// transaction id is below pg_snapshot_xmin(pg_current_snapshot()), i.e. rows of
// transactions that can no longer be in flight; together with checkpoints kept
// as the pair Position{TransactionID, Offset} that makes reads gap-free even
// though concurrent transactions commit their offsets out of order.
package eventstore

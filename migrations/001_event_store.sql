-- The event table is watermill-sql's topic table for the topic "events"
-- (DefaultPostgreSQLSchema's columns) plus the stream columns. See
-- eventstore/schema.go. payload stays JSON (not JSONB) so the stored bytes are
-- exactly the bytes appended, which the audit seal hashes.
CREATE TABLE watermill_events (
	"offset"        BIGSERIAL,
	uuid            VARCHAR(36) NOT NULL,
	created_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	payload         JSON DEFAULT NULL,
	metadata        JSON DEFAULT NULL,
	transaction_id  xid8 NOT NULL,
	stream_id       TEXT NOT NULL,
	stream_version  BIGINT NOT NULL CHECK (stream_version > 0),
	event_type      TEXT NOT NULL,
	schema_version  INT NOT NULL DEFAULT 1,
	recorded_at     TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (transaction_id, "offset"),
	CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- watermill's consumer-group offsets for the same topic.
CREATE TABLE watermill_offsets_events (
	consumer_group                VARCHAR(255) NOT NULL PRIMARY KEY,
	offset_acked                  BIGINT,
	last_processed_transaction_id xid8 NOT NULL
);
---- create above / drop below ----
DROP TABLE watermill_offsets_events;
DROP TABLE watermill_events;

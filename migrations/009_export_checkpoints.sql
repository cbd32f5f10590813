-- The event export (export/): where each relay stands in the stream. One row
-- per broker stream the events are exported to. The pair (transaction_id,
-- offset) is the position of the last event the broker acknowledged (an
-- offset alone would skip events committed out of order); stream_seq is the
-- broker's sequence of that message. The broker's stream is the truth of what
-- was exported: a relay starting up moves this row to the position its last
-- message carries, so a checkpoint lost in a crash or ahead of a broker that
-- lost unflushed messages costs a re-publish, never a gap.
CREATE TABLE export_checkpoints (
	name           TEXT PRIMARY KEY,
	transaction_id xid8 NOT NULL DEFAULT '0',
	"offset"       BIGINT NOT NULL DEFAULT 0,
	stream_seq     BIGINT NOT NULL DEFAULT 0,
	published      BIGINT NOT NULL DEFAULT 0,
	updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
	-- the last failure (broker down, rejected publish), cleared by the next
	-- acknowledged batch
	last_error     TEXT
);
---- create above / drop below ----
DROP TABLE export_checkpoints;

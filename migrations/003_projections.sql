-- Projections (see projections/): each read model is fed by the event stream
-- in store order and commits its rows together with its checkpoint.

-- One row per projection: where it is in the stream, as the pair
-- (transaction_id, offset) — an offset alone would skip events committed out
-- of order. Runners lock the row FOR UPDATE for every batch, so one runner per
-- projection writes at a time across replicas, and a rebuild's swap blocks
-- the live runner by locking it too.
CREATE TABLE projection_checkpoints (
	name           TEXT PRIMARY KEY,
	version        INT NOT NULL,
	transaction_id xid8 NOT NULL DEFAULT '0',
	"offset"       BIGINT NOT NULL DEFAULT 0,
	updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
	-- the last systemic failure (database down, schema bug), cleared by the
	-- next committed batch; poison events go to projection_quarantine instead
	last_error     TEXT
);

-- Poison events: an event whose effects a projection could not apply is
-- recorded here and skipped, so one bad event never stops a projection.
-- shadow marks the entries of a rebuild in progress; the swap makes them live.
CREATE TABLE projection_quarantine (
	projection     TEXT NOT NULL,
	shadow         BOOLEAN NOT NULL DEFAULT false,
	transaction_id xid8 NOT NULL,
	"offset"       BIGINT NOT NULL,
	event_id       TEXT NOT NULL,
	event_type     TEXT NOT NULL,
	error          TEXT NOT NULL,
	quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (projection, shadow, transaction_id, "offset")
);

-- A rebuild in progress: its shadow tables hold exactly the events up to
-- (transaction_id, offset), committed together with this row, so a rebuild
-- killed at any point resumes where it stopped.
CREATE TABLE projection_rebuilds (
	name           TEXT PRIMARY KEY,
	version        INT NOT NULL,
	transaction_id xid8 NOT NULL DEFAULT '0',
	"offset"       BIGINT NOT NULL DEFAULT 0,
	events_done    BIGINT NOT NULL DEFAULT 0,
	-- copy: bulk-loading the shadow; indexed: secondary indexes built, ready to swap
	phase          TEXT NOT NULL DEFAULT 'copy' CHECK (phase IN ('copy', 'indexed')),
	started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The audit log: one row per event, secrets redacted from data.
CREATE TABLE audit_log (
	transaction_id xid8 NOT NULL,
	"offset"       BIGINT NOT NULL,
	event_id       TEXT NOT NULL,
	actor_id       TEXT,
	actor_email    TEXT,
	event_type     TEXT NOT NULL,
	recorded_at    TIMESTAMPTZ NOT NULL,
	stream_id      TEXT NOT NULL,
	data           JSONB NOT NULL,
	CONSTRAINT audit_log_pkey PRIMARY KEY (transaction_id, "offset")
);
-- /ops/audit/me and ?user=<id>: newest first per actor.
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, transaction_id DESC, "offset" DESC);
-- ?type=
CREATE INDEX audit_log_type_idx ON audit_log (event_type, transaction_id DESC, "offset" DESC);
-- ?user=<email>
CREATE INDEX audit_log_actor_email_idx ON audit_log (lower(actor_email), transaction_id DESC, "offset" DESC);

-- The tamper-evidence hash chain: hash = SHA-256(previous hash || canonical
-- bytes of the event), seq = the event's 1-based place in the chain.
CREATE TABLE audit_seal (
	transaction_id xid8 NOT NULL,
	"offset"       BIGINT NOT NULL,
	event_id       TEXT NOT NULL,
	seq            BIGINT NOT NULL,
	hash           BYTEA NOT NULL,
	CONSTRAINT audit_seal_pkey PRIMARY KEY (transaction_id, "offset")
);
---- create above / drop below ----
DROP TABLE audit_seal;
DROP TABLE audit_log;
DROP TABLE projection_rebuilds;
DROP TABLE projection_quarantine;
DROP TABLE projection_checkpoints;

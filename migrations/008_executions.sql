-- Executions (issue #9). execution_daily_usage is the state the daily risk
-- limits are checked against: what one user had accepted on one UTC day
-- under their own profile. The deciding transaction inserts the row when
-- missing, locks it, and writes it together with the execution.prepare
-- event (adapters/postgres/executions.go), so two concurrent prepares
-- cannot both pass the last slot. Decimals are exact NUMERIC.
CREATE TABLE execution_daily_usage (
	user_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	day      DATE NOT NULL,
	orders   INTEGER NOT NULL DEFAULT 0 CHECK (orders >= 0),
	notional NUMERIC NOT NULL DEFAULT 0 CHECK (notional >= 0),
	PRIMARY KEY (user_id, day)
);

-- Idempotency-Key claims of the execution commands (app/idempotency.go),
-- kept 24 h. A claim is pending while its request runs; execution_id is set
-- in the transaction that appends the decision (from then on the claim is
-- never taken over as abandoned); done stores the final response in the
-- transaction of the command's last events. response is JSON, not JSONB:
-- a repeat gets the first body back byte for byte.
CREATE TABLE idempotency_keys (
	user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	key          TEXT NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 128),
	request_hash BYTEA NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('pending', 'done')),
	execution_id UUID,
	status       INTEGER,
	response     JSON,
	retry_after  INTEGER NOT NULL DEFAULT 0,
	created_at   TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (user_id, key),
	CHECK ((state = 'done') = (status IS NOT NULL AND response IS NOT NULL))
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
---- create above / drop below ----
DROP TABLE idempotency_keys;
DROP TABLE execution_daily_usage;

-- The daily_risk_compare read model (projections/dailyrisk.go): per UTC day
-- and risk profile, what the prepares decided under that profile and how the
-- test orders of its users went, for GET /ops/risk/daily-compare. Counters
-- only, so a batch adds to them with one INSERT ... ON CONFLICT per table.
CREATE TABLE daily_risk_compare (
	day                date NOT NULL,
	profile            TEXT NOT NULL,
	prepares           BIGINT NOT NULL DEFAULT 0,
	accepted           BIGINT NOT NULL DEFAULT 0,
	rejected           BIGINT NOT NULL DEFAULT 0,
	-- sums of the prepares' decimal notionals, exact (NUMERIC, never float)
	notional_requested NUMERIC NOT NULL DEFAULT 0,
	notional_accepted  NUMERIC NOT NULL DEFAULT 0,
	binance_ok         BIGINT NOT NULL DEFAULT 0,
	binance_error      BIGINT NOT NULL DEFAULT 0,
	ibkr_ok            BIGINT NOT NULL DEFAULT 0,
	ibkr_error         BIGINT NOT NULL DEFAULT 0,
	-- prepares the other profile (the shadow evaluation) decided differently
	divergent          BIGINT NOT NULL DEFAULT 0,
	CONSTRAINT daily_risk_compare_pkey PRIMARY KEY (day, profile)
);

-- Rejected prepares by failed check: a prepare failing two checks counts
-- once under each. A child table rather than a JSONB map keeps the batch's
-- upsert a plain addition.
CREATE TABLE daily_risk_compare_checks (
	day      date NOT NULL,
	profile  TEXT NOT NULL,
	code     TEXT NOT NULL,
	rejected BIGINT NOT NULL,
	CONSTRAINT daily_risk_compare_checks_pkey PRIMARY KEY (day, profile, code)
);
---- create above / drop below ----
DROP TABLE daily_risk_compare_checks;
DROP TABLE daily_risk_compare;
DELETE FROM projection_checkpoints WHERE name = 'daily_risk_compare';
DELETE FROM projection_quarantine WHERE projection = 'daily_risk_compare';
DELETE FROM projection_rebuilds WHERE name = 'daily_risk_compare';

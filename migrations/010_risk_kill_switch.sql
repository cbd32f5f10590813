-- The risk kill switch (DESIGN §8): while engaged, every order is rejected
-- under every profile. One row, the switch's state, written together with
-- the risk.kill_switch.* event that changes it (version is the version of
-- the risk-kill-switch stream). Every execution decision reads it in its
-- deciding round trip (adapters/postgres/executions.go).
CREATE TABLE risk_kill_switch (
	id         BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
	engaged    BOOLEAN NOT NULL DEFAULT false,
	reason     TEXT NOT NULL DEFAULT '',
	version    BIGINT NOT NULL DEFAULT 0,
	changed_by UUID,
	changed_at TIMESTAMPTZ
);
INSERT INTO risk_kill_switch DEFAULT VALUES;
---- create above / drop below ----
DROP TABLE risk_kill_switch;

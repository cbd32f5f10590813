-- Users read model, written in the same transaction as the events of the
-- user-<id> stream (see adapters/postgres/users.go), plus the credentials
-- events must never carry. The unique index on lower(email) is what makes
-- two concurrent creations of one address yield exactly one user.
CREATE TABLE users (
	id                 UUID PRIMARY KEY,
	email              TEXT NOT NULL,
	role               TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
	risk_profile       TEXT NOT NULL CHECK (risk_profile IN ('model2', 'loose')),
	-- argon2id PHC string.
	password_hash      TEXT NOT NULL,
	totp_enabled       BOOLEAN NOT NULL DEFAULT false,
	-- Tokens issued at or before this instant (microseconds) are revoked.
	tokens_valid_after TIMESTAMPTZ NOT NULL,
	created_at         TIMESTAMPTZ NOT NULL,
	updated_at         TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A user's TOTP seed, pending (users.totp_enabled false) or active. seed is
-- {"<key id hex>": "<base64 AES-GCM ciphertext>", ...}: one entry per key
-- the seed is encrypted under, several during a key rotation.
CREATE TABLE user_totp (
	user_id   UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	seed      JSONB NOT NULL,
	-- The last RFC 6238 time step a code was accepted for: codes are
	-- single-use.
	last_step BIGINT NOT NULL DEFAULT 0
);

-- Login attempts the throttle counts (failures and in-flight attempts, per
-- attempted address and per client IP, in a sliding window), shared by every
-- replica. Rows are written in the same transaction as the attempt's
-- auth.login.failure event and pruned once outside every window.
CREATE TABLE login_attempts (
	id           BIGSERIAL PRIMARY KEY,
	email        TEXT NOT NULL,
	client_ip    TEXT NOT NULL,
	attempted_at TIMESTAMPTZ NOT NULL,
	outcome      TEXT NOT NULL CHECK (outcome IN ('pending', 'failure'))
);
CREATE INDEX login_attempts_email_idx ON login_attempts (email, attempted_at);
CREATE INDEX login_attempts_ip_idx ON login_attempts (client_ip, attempted_at);
CREATE INDEX login_attempts_at_idx ON login_attempts (attempted_at);
---- create above / drop below ----
DROP TABLE login_attempts;
DROP TABLE user_totp;
DROP TABLE users;

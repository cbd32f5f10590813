-- Exchange credentials (issue #8), written in the same transaction as the
-- events of the exchange-secrets-<user id> stream (adapters/postgres/
-- exchange_secrets.go). fields is {"<field>": {"<key id hex>": "<base64
-- AES-GCM ciphertext>", ...}, ...}: every field is sealed, bound to (user id,
-- exchange, field), and holds one ciphertext per key during a rotation.
-- Events carry the hint and key id only; the hint lives in the
-- exchange_secrets_status read model, not here.
CREATE TABLE exchange_secrets (
	user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	exchange     TEXT NOT NULL CHECK (exchange IN ('BINANCE', 'IBKR')),
	fields       JSONB NOT NULL,
	updated_at   TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (user_id, exchange)
);

-- The exchange_secrets_status projection: one row per configured secret
-- (deleted ones are removed), from secrets.exchange.configured/.deleted.
CREATE TABLE exchange_secrets_status (
	user_id      UUID NOT NULL,
	exchange     TEXT NOT NULL,
	api_key_hint TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	updated_at   TIMESTAMPTZ NOT NULL,
	CONSTRAINT exchange_secrets_status_pkey PRIMARY KEY (user_id, exchange)
);
---- create above / drop below ----
DROP TABLE exchange_secrets_status;
DROP TABLE exchange_secrets;

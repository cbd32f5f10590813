-- audit_log version 2: subject_id, the user an event is about (whose account
-- it changed or tried to use), so that /ops/audit/me shows what happened to
-- the caller's account — failed logins against it, an admin's or the CLI's
-- changes — and not only what the caller did. See domain.EventSubject.
--
-- The rows already projected are brought to version 2 here, in place, so a
-- deployment needs no rebuild (a rebuild gives the same rows: tested).

-- Wait for a rebuild of audit_log in progress (it holds this advisory lock,
-- projections.rebuildLockClass = 0x74726264, for its whole run); rebuilds
-- started meanwhile fail to get it and can be rerun.
SELECT pg_advisory_xact_lock(1953653348, hashtext('audit_log'));

-- Lock the checkpoint first: a runner of the previous build skips its batch
-- while we hold it (SKIP LOCKED), and once we commit it finds version 2 and
-- stops instead of writing rows without a subject. A rebuild left unfinished
-- under version 1 starts afresh, with the new column, when rerun.
UPDATE projection_checkpoints SET version = 2 WHERE name = 'audit_log';

ALTER TABLE audit_log ADD COLUMN subject_id TEXT;

-- domain.EventSubject, in SQL, over the stored (redacted) payloads: the id in
-- a user-<id> stream, else a top-level "user_id" string; 1 to 128 bytes.
UPDATE audit_log SET subject_id = CASE
		WHEN stream_id LIKE 'user-_%' AND octet_length(stream_id) <= 5 + 128 THEN substr(stream_id, 6)
		WHEN jsonb_typeof(data->'user_id') = 'string' AND octet_length(data->>'user_id') BETWEEN 1 AND 128 THEN data->>'user_id'
	END
WHERE stream_id LIKE 'user-_%' OR data ? 'user_id';

-- /ops/audit/me and ?user=: newest first per subject, merged with the
-- actor index's scan. Only the rows where the subject is not also the actor:
-- the others are found by the actor index already, so the index stays small
-- (most events are a user acting on their own account) and its scan never
-- walks past a user's own events to find the next one by someone else.
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, transaction_id DESC, "offset" DESC)
	WHERE subject_id IS NOT NULL AND subject_id IS DISTINCT FROM actor_id;

-- ?user=<email> now resolves the address to a user id and uses the two
-- indexes above; nothing reads the actor's email by index any more.
DROP INDEX audit_log_actor_email_idx;
---- create above / drop below ----
CREATE INDEX audit_log_actor_email_idx ON audit_log (lower(actor_email), transaction_id DESC, "offset" DESC);
DROP INDEX audit_log_subject_idx;
ALTER TABLE audit_log DROP COLUMN subject_id;
UPDATE projection_checkpoints SET version = 1 WHERE name = 'audit_log';

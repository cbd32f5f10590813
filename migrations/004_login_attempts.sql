-- Issue #7: the login throttle keys on the keyed hash of the attempted
-- username (HMAC-SHA256 under a key derived from SECRET_KEY, see
-- domain.UsernameKey), never on the typed text, which may be a password
-- typed into the username field. The rows written before hold typed text
-- and cannot be re-keyed here (the key is not in the database), so they are
-- dropped: every throttle starts afresh once, at the upgrade. A replica
-- still running the previous version fails its logins from here until it is
-- replaced (its INSERT names the old column).
DELETE FROM login_attempts;
ALTER TABLE login_attempts RENAME COLUMN email TO account_key;
ALTER INDEX login_attempts_email_idx RENAME TO login_attempts_account_idx;
---- create above / drop below ----
ALTER INDEX login_attempts_account_idx RENAME TO login_attempts_email_idx;
ALTER TABLE login_attempts RENAME COLUMN account_key TO email;

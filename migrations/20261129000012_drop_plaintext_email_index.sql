-- The e-mail filter reads `email_hash` only (since 20261129000011); the index on the legacy
-- plaintext column served no query but still took an entry for every user written and every
-- non-HOT update of one (README "Performance").
DROP INDEX IF EXISTS users_email_id_idx;

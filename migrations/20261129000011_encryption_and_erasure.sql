-- Personal data at rest (README "Security").
--
-- users: the profile moves into `pii`, sealed with AES-256-GCM under the data key named by
-- `pii_key_id`; `email_hash` (HMAC-SHA256 of the lower-cased address under the lookup key)
-- replaces the plaintext address for the e-mail filter. Rows written before this migration keep
-- `profile`/`email` until the background re-sealing pass moves them (reads accept both; the
-- e-mail filter finds them once moved). `erased_at` marks a user whose PII was erased
-- (DELETE /v1/users/{id}): ids, times and statuses stay; `profile`, `pii` and `email_hash` go.
ALTER TABLE users
    ALTER COLUMN profile DROP NOT NULL,
    ALTER COLUMN email DROP NOT NULL,
    ADD COLUMN pii        bytea,
    ADD COLUMN pii_key_id text,
    ADD COLUMN email_hash bytea,
    ADD COLUMN erased_at  timestamptz;

CREATE INDEX users_email_hash_id_idx ON users (email_hash, id);
-- The re-sealing pass looks for rows under any key but the current one.
CREATE INDEX users_pii_key_id_idx ON users (pii_key_id);

-- Webhook bodies may carry a whole user (KillB): sealed like profiles.
ALTER TABLE webhook_events ADD COLUMN raw_body_key_id text;
CREATE INDEX webhook_events_raw_body_key_id_idx ON webhook_events (raw_body_key_id);

-- Stored answers replayed for an Idempotency-Key hold the user they answered with: sealed, and
-- tied to that user (`resource_id`) so erasure can remove them.
ALTER TABLE idempotency_keys
    ADD COLUMN response_key_id text,
    ADD COLUMN resource_id     uuid;
CREATE INDEX idempotency_keys_resource_id_idx ON idempotency_keys (resource_id)
    WHERE resource_id IS NOT NULL;
CREATE INDEX idempotency_keys_response_key_id_idx ON idempotency_keys (response_key_id);

-- Erasure at each provider: NULL (none asked), 'pending' (a job will ask the provider),
-- 'deleted' (the provider confirmed), 'manual_follow_up' (the provider has no deletion API, or
-- it refused: an operator must ask the provider; listed in the reconciliation report),
-- 'not_submitted' (the user never reached the provider).
ALTER TABLE provider_links
    ADD COLUMN erasure text,
    ADD CONSTRAINT provider_links_erasure_check
        CHECK (erasure IN ('pending', 'deleted', 'manual_follow_up', 'not_submitted'));

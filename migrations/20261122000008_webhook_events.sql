-- Inbound provider webhooks, stored once their signature verified and before anything is
-- applied. `(provider, provider_event_id)` deduplicates redeliveries. `processed_at` stays NULL
-- while the event still needs work (the provider could not be reached for the re-fetch, or the
-- provider user was not linked yet): reconciliation retries those. `raw_body` holds the exact
-- bytes received (they may contain PII: KillB sends the whole user; encryption comes later).
CREATE TABLE webhook_events (
    id                uuid        NOT NULL,
    provider          text        NOT NULL,
    provider_event_id text        NOT NULL,
    event_type        text,
    provider_user_id  text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    signature_valid   boolean     NOT NULL,
    raw_body          bytea       NOT NULL,
    processed_at      timestamptz,
    outcome           text        NOT NULL DEFAULT 'received',
    error             text,
    user_id           uuid        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT webhook_events_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_events_provider_event_id_key UNIQUE (provider, provider_event_id)
);

-- Reconciliation's retry scan: events still to process, oldest first.
CREATE INDEX webhook_events_unprocessed_idx ON webhook_events (received_at)
    WHERE processed_at IS NULL;

-- The provider's own time stamp of the newest state applied to a link: an older state (a
-- stale or out-of-order signal) is never applied over it.
ALTER TABLE provider_links ADD COLUMN provider_observed_at timestamptz;

-- One row per (user, provider): the provider's id for the user and what we know of its status.
CREATE TABLE provider_links (
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider         text        NOT NULL,
    provider_user_id text,
    status           text        NOT NULL DEFAULT 'pending_submission',
    provider_status  text,
    requirements     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    last_error       jsonb,
    submitted_at     timestamptz,
    last_synced_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT provider_links_pkey PRIMARY KEY (user_id, provider),
    CONSTRAINT provider_links_provider_user_id_key UNIQUE (provider, provider_user_id)
);

-- The `provider` list filter and the reconciliation scans.
CREATE INDEX provider_links_provider_status_idx ON provider_links (provider, status);

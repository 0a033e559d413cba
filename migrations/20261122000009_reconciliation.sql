-- Reconciliation: what the provider's last answer maps to (even when the transition was refused,
-- e.g. ours is a final `rejected` while the provider now says approved), and a log of passes.
ALTER TABLE provider_links ADD COLUMN provider_mapped_status text;

-- The drift report's scans: links that disagree with their provider, flagged links, and the
-- poller's oldest-first walk over submitted links.
CREATE INDEX provider_links_drift_idx ON provider_links (updated_at)
    WHERE provider_mapped_status IS NOT NULL AND provider_mapped_status IS DISTINCT FROM status;
CREATE INDEX provider_links_needs_review_idx ON provider_links (updated_at) WHERE needs_review;
CREATE INDEX provider_links_last_synced_idx ON provider_links (last_synced_at)
    WHERE provider_user_id IS NOT NULL;

-- One row per reconciliation pass. A pass records its start when it begins (holding the
-- cluster-wide advisory lock) and its summary when it ends; a pass whose instance died keeps
-- `finished_at` NULL.
CREATE TABLE reconciliation_runs (
    id          uuid        PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    trigger     text        NOT NULL,
    instance    text,
    summary     jsonb,
    CONSTRAINT reconciliation_runs_trigger_check CHECK (trigger IN ('poll', 'api'))
);

CREATE INDEX reconciliation_runs_started_idx ON reconciliation_runs (started_at DESC);

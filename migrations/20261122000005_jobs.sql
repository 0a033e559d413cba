-- The background job queue (submissions, updates, syncs, notifications). Workers claim due
-- jobs with FOR UPDATE SKIP LOCKED; `queue_key` keeps jobs of one user and provider in order.
CREATE TABLE jobs (
    id            uuid        PRIMARY KEY,
    kind          text        NOT NULL,
    queue_key     text,
    payload       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state         text        NOT NULL DEFAULT 'queued',
    attempts      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 8,
    run_at        timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz,
    locked_by     text,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_state_check CHECK (state IN ('queued', 'running', 'succeeded', 'failed'))
);

CREATE INDEX jobs_due_idx ON jobs (run_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_state_idx ON jobs (state, updated_at);
CREATE INDEX jobs_queue_key_idx ON jobs (queue_key, created_at) WHERE state IN ('queued', 'running');

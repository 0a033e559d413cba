-- The canonical user. The validated profile is kept whole as JSONB; the columns the API
-- filters and joins on are typed and indexed beside it.
CREATE TABLE users (
    id          uuid        PRIMARY KEY,
    external_id text        NOT NULL,
    email       text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending_submission',
    profile     jsonb       NOT NULL,
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_external_id_key UNIQUE (external_id)
);

-- List filters: email (case-insensitive) and status, each paginated by id (UUIDv7, time-ordered).
CREATE INDEX users_email_id_idx ON users (lower(email), id);
CREATE INDEX users_status_id_idx ON users (status, id);

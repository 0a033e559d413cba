-- Idempotency-Key records, scoped to the API key that used them. A row with no response yet is
-- a request in flight; the stored response is replayed for the same key and request.
CREATE TABLE idempotency_keys (
    api_key_name     text        NOT NULL,
    idempotency_key  text        NOT NULL,
    request_method   text        NOT NULL,
    request_path     text        NOT NULL,
    request_hash     text        NOT NULL,
    response_status  smallint,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (api_key_name, idempotency_key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

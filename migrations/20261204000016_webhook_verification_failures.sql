-- Webhook deliveries whose signature could not be verified, counted per provider per minute in
-- the database (not in one instance's memory), so every instance's failures count and a restart
-- keeps them. Read by GET /v1/ops/overview (the last hour); minutes older than a day are pruned
-- by the reconciliation pass.
CREATE TABLE webhook_verification_failures (
    provider  text        NOT NULL,
    minute    timestamptz NOT NULL,
    failures  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, minute)
);

CREATE INDEX webhook_verification_failures_minute_idx ON webhook_verification_failures (minute);

-- The audit trail. `seq` gives a strict order even for events written in the same instant;
-- `data` never holds PII (ids, field names, statuses, timings only).
CREATE TABLE user_events (
    seq     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id      uuid        NOT NULL,
    user_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type    text        NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    data    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT user_events_id_key UNIQUE (id)
);

CREATE INDEX user_events_user_id_seq_idx ON user_events (user_id, seq);

-- Outbound notifications are a projection of the audit trail (user_events), which is written in
-- the same transaction as every state change. Each event carries its transaction id; a
-- dispatcher turns the events of transactions that are certainly finished (xid below the
-- snapshot's xmin) into delivery jobs and advances one cursor per subscriber in the same
-- transaction, so no event is skipped or enqueued twice.
ALTER TABLE user_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX user_events_txid_idx ON user_events (txid);

CREATE TABLE notification_cursors (
    subscriber  text        PRIMARY KEY,
    -- Every event of a transaction with an id below this has been dispatched.
    next_txid   bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The request that created the user: a keyed hash (HMAC under the lookup key) of the API key's
-- name, the create's Idempotency-Key and its body, or NULL for a create sent without a key.
-- A create can commit the user and then fail to answer (the database going away between its
-- two statements); the client's retry with the same key then meets its own user under the
-- external_id's unique constraint. This column tells that retry ("your create, answered now")
-- from another request reusing the external_id (409 user_already_exists). Cleared on erasure.
ALTER TABLE users ADD COLUMN created_by_request bytea;

-- Hosted verification sessions handed out by POST /v1/users/{id}/verification-sessions, kept so
-- that an unexpired one is handed out again instead of opening another at the provider (README
-- "Verification"). The URL carries the provider's session token: sealed with AES-256-GCM like
-- the profile, under the data key named by `url_key_id`, bound to its row (associated data
-- `verification_sessions.url:<id>`), re-sealed on key rotation, deleted by erasure. The caller's
-- redirect URL is kept only as a keyed hash (under the lookup key), to tell sessions for
-- different redirects apart. One row per (user, provider, redirect): a newer session replaces it.
CREATE TABLE verification_sessions (
    id                uuid        PRIMARY KEY,
    user_id           uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider          text        NOT NULL,
    redirect_url_hash bytea,
    url               bytea       NOT NULL,
    url_key_id        text        NOT NULL,
    expires_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX verification_sessions_user_provider_idx
    ON verification_sessions (user_id, provider, created_at DESC);
-- The re-sealing pass looks for rows under any key but the current one.
CREATE INDEX verification_sessions_url_key_id_idx ON verification_sessions (url_key_id);

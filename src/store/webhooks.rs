//! The `webhook_events` table: every verified inbound provider webhook, stored before it is
//! applied, deduplicated by `(provider, provider_event_id)`.

use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use crate::crypto::{row_aad, Keyring};

pub const EVENT_ID_KEY: &str = "webhook_events_provider_event_id_key";

/// A verified delivery to store.
#[derive(Debug, Clone)]
pub struct NewWebhookEvent<'a> {
    pub provider: &'a str,
    pub provider_event_id: &'a str,
    pub event_type: Option<&'a str>,
    pub provider_user_id: Option<&'a str>,
    pub raw_body: &'a [u8],
}

fn raw_body_aad(id: Uuid) -> Vec<u8> {
    row_aad("webhook_events", "raw_body", &id.to_string())
}

/// Stores the event, its body sealed (it may carry a whole user); `None` when an event with the
/// same provider event id is already stored (a redelivery).
pub async fn insert(
    db: &PgPool,
    keyring: &Keyring,
    event: &NewWebhookEvent<'_>,
) -> Result<Option<Uuid>, StoreError> {
    let id = Uuid::now_v7();
    let sealed = keyring.seal(event.raw_body, &raw_body_aad(id));
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO webhook_events
            (id, provider, provider_event_id, event_type, provider_user_id, signature_valid,
             raw_body, raw_body_key_id)
         VALUES ($1, $2, $3, $4, $5, true, $6, $7)
         ON CONFLICT ON CONSTRAINT webhook_events_provider_event_id_key DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(event.provider)
    .bind(event.provider_event_id)
    .bind(event.event_type)
    .bind(event.provider_user_id)
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(inserted)
}

/// Records what handling the event came to (dropping the body when the user was erased). `processed: false` leaves it for a retry
/// (reconciliation), with `error` saying why.
pub async fn mark(
    db: &PgPool,
    id: Uuid,
    outcome: &str,
    processed: bool,
    user_id: Option<Uuid>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH owner AS (
             -- FOR SHARE waits for an erasure in progress and then sees its outcome.
             SELECT u.erased_at IS NOT NULL AS erased
               FROM users u
              WHERE u.id = COALESCE($4, (SELECT user_id FROM webhook_events WHERE id = $1))
                FOR SHARE
         ), erased AS (
             SELECT coalesce(bool_or(erased), false) AS yes FROM owner
         )
         UPDATE webhook_events SET
            outcome = $2,
            processed_at = CASE WHEN $3 THEN now() ELSE NULL END,
            user_id = COALESCE($4, user_id),
            error = $5,
            -- A late webhook about an erased user keeps no body: erasure stays complete.
            raw_body = CASE WHEN (SELECT yes FROM erased) THEN ''::bytea ELSE raw_body END,
            raw_body_key_id =
                CASE WHEN (SELECT yes FROM erased) THEN NULL ELSE raw_body_key_id END
          WHERE id = $1",
    )
    .bind(id)
    .bind(outcome)
    .bind(processed)
    .bind(user_id)
    .bind(error)
    .execute(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// The exact bytes received for a stored event, opened (`None` once erased).
pub async fn raw_body(
    db: &PgPool,
    keyring: &Keyring,
    id: Uuid,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row: Option<(Vec<u8>, Option<String>)> =
        sqlx::query_as("SELECT raw_body, raw_body_key_id FROM webhook_events WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
            .map_err(StoreError::from_sqlx)?;
    match row {
        Some((body, _)) if body.is_empty() => Ok(None),
        Some((body, Some(key_id))) => Ok(Some(keyring.open(&key_id, &body, &raw_body_aad(id))?)),
        Some((body, None)) => Ok(Some(body)), // stored before encryption
        None => Ok(None),
    }
}

/// Erasure: drops the bodies of a user's events (ids, types and outcomes stay).
pub async fn forget_user_bodies(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE webhook_events e SET raw_body = ''::bytea, raw_body_key_id = NULL
          WHERE octet_length(e.raw_body) > 0
            AND (e.user_id = $1
                 -- stored but not yet matched to the user (processing in flight)
                 OR EXISTS (SELECT 1 FROM provider_links l
                             WHERE l.user_id = $1 AND l.provider = e.provider
                               AND l.provider_user_id = e.provider_user_id))",
    )
    .bind(user_id)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?
    .rows_affected())
}

/// Bodies not sealed under `current_key_id`.
pub async fn count_stale_seals(pool: &PgPool, current_key_id: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events
          WHERE octet_length(raw_body) > 0 AND raw_body_key_id IS DISTINCT FROM $1",
    )
    .bind(current_key_id)
    .fetch_one(pool)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Re-seals up to `limit` bodies under the current key.
pub async fn reseal_batch(
    conn: &mut sqlx::PgConnection,
    keyring: &Keyring,
    limit: i64,
) -> Result<u64, StoreError> {
    let rows: Vec<(Uuid, Vec<u8>, Option<String>)> = sqlx::query_as(
        "SELECT id, raw_body, raw_body_key_id FROM webhook_events
          WHERE octet_length(raw_body) > 0 AND raw_body_key_id IS DISTINCT FROM $1
          LIMIT $2
          FOR UPDATE SKIP LOCKED",
    )
    .bind(keyring.current_key_id())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    let mut moved = 0;
    for (id, body, key_id) in rows {
        let plain = match key_id {
            Some(key_id) => keyring.open(&key_id, &body, &raw_body_aad(id))?,
            None => body,
        };
        let sealed = keyring.seal(&plain, &raw_body_aad(id));
        sqlx::query("UPDATE webhook_events SET raw_body = $2, raw_body_key_id = $3 WHERE id = $1")
            .bind(id)
            .bind(&sealed.bytes)
            .bind(&sealed.key_id)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from_sqlx)?;
        moved += 1;
    }
    Ok(moved)
}

/// Counts one delivery that failed verification in the current minute's row of `provider`.
pub async fn count_verification_failure(db: &PgPool, provider: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_verification_failures (provider, minute, failures)
         VALUES ($1, date_trunc('minute', now()), 1)
         ON CONFLICT (provider, minute)
         DO UPDATE SET failures = webhook_verification_failures.failures + 1",
    )
    .bind(provider)
    .execute(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Verification failures per provider over the last `minutes` minutes (the current one
/// included).
pub async fn verification_failures(
    db: &PgPool,
    minutes: i32,
) -> Result<Vec<(String, i64)>, StoreError> {
    sqlx::query_as(
        "SELECT provider, sum(failures)::bigint FROM webhook_verification_failures
          WHERE minute > date_trunc('minute', now()) - make_interval(mins => $1)
          GROUP BY provider",
    )
    .bind(minutes)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Drops the failure counts of minutes older than `keep_minutes`.
pub async fn prune_verification_failures(
    db: &PgPool,
    keep_minutes: i32,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM webhook_verification_failures
          WHERE minute < date_trunc('minute', now()) - make_interval(mins => $1)",
    )
    .bind(keep_minutes)
    .execute(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(done.rows_affected())
}

/// Stored deliveries of `provider` that named an account no link had (`unknown_user`, still
/// unprocessed) whose account no link names yet, newest first, one per account: `(event id,
/// provider user id)`.
pub async fn unmatched_accounts(
    db: &PgPool,
    provider: &str,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    sqlx::query_as(
        "SELECT id, provider_user_id FROM (
             SELECT DISTINCT ON (provider_user_id) id, provider_user_id, received_at
               FROM webhook_events
              WHERE provider = $1 AND outcome = 'unknown_user' AND processed_at IS NULL
                AND provider_user_id IS NOT NULL
                -- An account a link names by now came too early for its link, not for a
                -- waiting one: asking the provider about it again would crowd out the rest.
                AND NOT EXISTS (SELECT 1 FROM provider_links l
                                 WHERE l.provider = webhook_events.provider
                                   AND l.provider_user_id = webhook_events.provider_user_id)
              ORDER BY provider_user_id, received_at DESC) AS latest
          ORDER BY received_at DESC LIMIT $2",
    )
    .bind(provider)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

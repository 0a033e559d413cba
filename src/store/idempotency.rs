//! `Idempotency-Key` records: claim a key before doing the work, store the response after,
//! replay it for a retry of the same request.

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use crate::crypto::{row_aad, Keyring};

/// A stored answer to replay. The body is sealed at rest (it shows the user).
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The user the answer shows, if any (erasure deletes the record).
    pub resource_id: Option<Uuid>,
}

fn body_aad(api_key_name: &str, key: &str) -> Vec<u8> {
    // Length-prefixed, so no two (name, key) pairs share an encoding.
    row_aad(
        "idempotency_keys",
        "response_body",
        &format!("{}:{api_key_name}:{key}", api_key_name.len()),
    )
}

#[derive(Debug)]
pub enum Claim {
    /// This request owns the key: do the work, then `complete` or `release`. `resource_id` is
    /// the id reserved for what the work creates (`KeyedRequest::reserved_id`); `retaken` says
    /// the key was taken over from a request that died or lost its database before storing an
    /// answer, whose work (under that same id) may have committed.
    Claimed {
        resource_id: Option<Uuid>,
        retaken: bool,
    },
    /// The same request already finished: replay its answer.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Reused,
    /// The same request is still being processed by someone else.
    InProgress,
}

/// Identifies the request a key is used for.
#[derive(Debug, Clone)]
pub struct KeyedRequest<'a> {
    pub api_key_name: &'a str,
    pub key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub request_hash: &'a str,
    /// The id the work will give what it creates, kept with the claim (before the work runs),
    /// so that a retry after a lost answer finds the same resource instead of making another.
    pub reserved_id: Option<Uuid>,
}

/// Keys are remembered for a day, as at Stripe; after that the key may be reused.
// (Kept in the SQL below as `interval '24 hours'`.)
/// A claim older than this with no response belongs to a process that died mid-request.
// (Kept in the SQL below as `interval '60 seconds'`.)

#[derive(sqlx::FromRow)]
struct KeyRow {
    request_method: String,
    request_path: String,
    request_hash: String,
    response_status: Option<i16>,
    response_headers: Option<Json<Vec<(String, String)>>>,
    response_body: Option<Vec<u8>>,
    response_key_id: Option<String>,
    resource_id: Option<Uuid>,
    expired: bool,
    abandoned: bool,
}

pub async fn claim(
    pool: &PgPool,
    keyring: &Keyring,
    req: &KeyedRequest<'_>,
) -> Result<Claim, StoreError> {
    // Two rounds at most: the second follows the removal of an expired record.
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys
                 (api_key_name, idempotency_key, request_method, request_path, request_hash,
                  resource_id)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING",
        )
        .bind(req.api_key_name)
        .bind(req.key)
        .bind(req.method)
        .bind(req.path)
        .bind(req.request_hash)
        .bind(req.reserved_id)
        .execute(pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Claimed {
                resource_id: req.reserved_id,
                retaken: false,
            });
        }
        let existing = sqlx::query_as::<_, KeyRow>(
            "SELECT request_method, request_path, request_hash, response_status,
                    response_headers, response_body, response_key_id, resource_id,
                    created_at < now() - interval '24 hours' AS expired,
                    (completed_at IS NULL AND created_at < now() - interval '60 seconds')
                        AS abandoned
               FROM idempotency_keys
              WHERE api_key_name = $1 AND idempotency_key = $2",
        )
        .bind(req.api_key_name)
        .bind(req.key)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        let Some(existing) = existing else {
            continue; // released between our insert and select: try again
        };
        if existing.expired {
            sqlx::query(
                "DELETE FROM idempotency_keys
                  WHERE api_key_name = $1 AND idempotency_key = $2
                    AND created_at < now() - interval '24 hours'",
            )
            .bind(req.api_key_name)
            .bind(req.key)
            .execute(pool)
            .await
            .map_err(StoreError::from_sqlx)?;
            continue;
        }
        if existing.request_hash != req.request_hash
            || existing.request_method != req.method
            || existing.request_path != req.path
        {
            return Ok(Claim::Reused);
        }
        if let (Some(status), Some(body)) = (existing.response_status, existing.response_body) {
            let body = match &existing.response_key_id {
                Some(key_id) => {
                    keyring.open(key_id, &body, &body_aad(req.api_key_name, req.key))?
                }
                None => body, // stored before encryption
            };
            return Ok(Claim::Replay(StoredResponse {
                status: status as u16,
                headers: existing.response_headers.map(|h| h.0).unwrap_or_default(),
                body,
                resource_id: existing.resource_id,
            }));
        }
        if existing.abandoned {
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET created_at = now()
                  WHERE api_key_name = $1 AND idempotency_key = $2 AND completed_at IS NULL
                    AND created_at < now() - interval '60 seconds'",
            )
            .bind(req.api_key_name)
            .bind(req.key)
            .execute(pool)
            .await
            .map_err(StoreError::from_sqlx)?;
            if taken.rows_affected() == 1 {
                return Ok(Claim::Claimed {
                    resource_id: existing.resource_id,
                    retaken: true,
                });
            }
        }
        return Ok(Claim::InProgress);
    }
    Ok(Claim::InProgress)
}

/// Stores the answer of a claimed request for replay.
pub async fn complete(
    pool: &PgPool,
    keyring: &Keyring,
    api_key_name: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    let sealed = keyring.seal(&response.body, &body_aad(api_key_name, key));
    sqlx::query(
        "UPDATE idempotency_keys
            SET response_status = $3, response_headers = $4, response_body = $5,
                response_key_id = $6, resource_id = $7, completed_at = now()
          WHERE api_key_name = $1 AND idempotency_key = $2",
    )
    .bind(api_key_name)
    .bind(key)
    .bind(response.status as i16)
    .bind(Json(&response.headers))
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .bind(response.resource_id)
    .execute(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Makes a claimed key with a reserved resource id free for the next request with it to take
/// at once (as if its request had died), keeping the id: the failed work may have committed.
pub async fn reopen(pool: &PgPool, api_key_name: &str, key: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '61 seconds'
          WHERE api_key_name = $1 AND idempotency_key = $2 AND completed_at IS NULL",
    )
    .bind(api_key_name)
    .bind(key)
    .execute(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Gives a claimed key back (the request failed in a way worth retrying).
pub async fn release(pool: &PgPool, api_key_name: &str, key: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM idempotency_keys
          WHERE api_key_name = $1 AND idempotency_key = $2 AND completed_at IS NULL",
    )
    .bind(api_key_name)
    .bind(key)
    .execute(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Deletes every stored answer that shows `user_id` (erasure).
pub async fn forget_resource(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM idempotency_keys WHERE resource_id = $1")
            .bind(user_id)
            .execute(conn)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected(),
    )
}

/// Answers not sealed under `current_key_id`.
pub async fn count_stale_seals(pool: &PgPool, current_key_id: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys
          WHERE response_body IS NOT NULL AND response_key_id IS DISTINCT FROM $1",
    )
    .bind(current_key_id)
    .fetch_one(pool)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Re-seals up to `limit` stored answers under the current key.
pub async fn reseal_batch(
    conn: &mut sqlx::PgConnection,
    keyring: &Keyring,
    limit: i64,
) -> Result<u64, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Stale {
        api_key_name: String,
        idempotency_key: String,
        response_body: Vec<u8>,
        response_key_id: Option<String>,
    }
    let rows = sqlx::query_as::<_, Stale>(
        "SELECT api_key_name, idempotency_key, response_body, response_key_id
           FROM idempotency_keys
          WHERE response_body IS NOT NULL AND response_key_id IS DISTINCT FROM $1
          LIMIT $2
          FOR UPDATE SKIP LOCKED",
    )
    .bind(keyring.current_key_id())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    let mut moved = 0;
    for row in rows {
        let aad = body_aad(&row.api_key_name, &row.idempotency_key);
        let plain = match &row.response_key_id {
            Some(key_id) => keyring.open(key_id, &row.response_body, &aad)?,
            None => row.response_body,
        };
        let sealed = keyring.seal(&plain, &aad);
        sqlx::query(
            "UPDATE idempotency_keys SET response_body = $3, response_key_id = $4
              WHERE api_key_name = $1 AND idempotency_key = $2",
        )
        .bind(&row.api_key_name)
        .bind(&row.idempotency_key)
        .bind(&sealed.bytes)
        .bind(&sealed.key_id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_sqlx)?;
        moved += 1;
    }
    Ok(moved)
}

//! `Idempotency-Key` records: claim a key before doing the work, store the response after,
//! replay it for a retry of the same request.

use sqlx::types::Json;
use sqlx::PgPool;

use super::StoreError;

/// A stored answer to replay.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum Claim {
    /// This request owns the key: do the work, then `complete` or `release`.
    Claimed,
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
    expired: bool,
    abandoned: bool,
}

pub async fn claim(pool: &PgPool, req: &KeyedRequest<'_>) -> Result<Claim, StoreError> {
    // Two rounds at most: the second follows the removal of an expired record.
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys
                 (api_key_name, idempotency_key, request_method, request_path, request_hash)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(req.api_key_name)
        .bind(req.key)
        .bind(req.method)
        .bind(req.path)
        .bind(req.request_hash)
        .execute(pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        let existing = sqlx::query_as::<_, KeyRow>(
            "SELECT request_method, request_path, request_hash, response_status,
                    response_headers, response_body,
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
            return Ok(Claim::Replay(StoredResponse {
                status: status as u16,
                headers: existing.response_headers.map(|h| h.0).unwrap_or_default(),
                body,
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
                return Ok(Claim::Claimed);
            }
        }
        return Ok(Claim::InProgress);
    }
    Ok(Claim::InProgress)
}

/// Stores the answer of a claimed request for replay.
pub async fn complete(
    pool: &PgPool,
    api_key_name: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys
            SET response_status = $3, response_headers = $4, response_body = $5,
                completed_at = now()
          WHERE api_key_name = $1 AND idempotency_key = $2",
    )
    .bind(api_key_name)
    .bind(key)
    .bind(response.status as i16)
    .bind(Json(&response.headers))
    .bind(&response.body)
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

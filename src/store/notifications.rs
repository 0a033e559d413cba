//! Per-subscriber cursors over `user_events`, for the notification dispatcher.

use sqlx::types::Json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// Locks the subscriber's cursor for this transaction (`None` when another instance holds it),
/// creating it at the current horizon on first sight so history is not replayed.
pub async fn lock_cursor(
    conn: &mut PgConnection,
    subscriber: &str,
) -> Result<Option<i64>, StoreError> {
    sqlx::query(
        "INSERT INTO notification_cursors (subscriber, next_txid)
         VALUES ($1, pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
         ON CONFLICT (subscriber) DO NOTHING",
    )
    .bind(subscriber)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    sqlx::query_scalar(
        "SELECT next_txid FROM notification_cursors WHERE subscriber = $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(subscriber)
    .fetch_optional(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Creates the subscriber's cursor at the current horizon unless it exists. Called at start-up,
/// before the server accepts requests, so every event written after start-up is notified
/// (created lazily by the first dispatch instead, a request served before that tick would be
/// behind the new cursor and never notified).
pub async fn ensure_cursor(pool: &sqlx::PgPool, subscriber: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notification_cursors (subscriber, next_txid)
         VALUES ($1, pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
         ON CONFLICT (subscriber) DO NOTHING",
    )
    .bind(subscriber)
    .execute(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrailEvent {
    pub seq: i64,
    pub id: Uuid,
    pub user_id: Uuid,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub at: OffsetDateTime,
    pub data: Json<serde_json::Value>,
}

/// The events of the given types written by transactions that are certainly finished and not
/// yet dispatched (ids from `from_txid` up to the snapshot's xmin), oldest first, and the new
/// cursor position.
pub async fn settled_events(
    conn: &mut PgConnection,
    from_txid: i64,
    types: &[&str],
) -> Result<(Vec<TrailEvent>, i64), StoreError> {
    let horizon: i64 =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from_sqlx)?;
    if horizon <= from_txid {
        return Ok((Vec::new(), from_txid));
    }
    let events = sqlx::query_as::<_, TrailEvent>(
        "SELECT seq, id, user_id, type, at, data FROM user_events
          WHERE txid >= $1::text::xid8 AND txid < $2::text::xid8 AND type = ANY($3)
          ORDER BY seq",
    )
    .bind(from_txid.to_string())
    .bind(horizon.to_string())
    .bind(types)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok((events, horizon))
}

pub async fn advance_cursor(
    conn: &mut PgConnection,
    subscriber: &str,
    next_txid: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE notification_cursors SET next_txid = $2, updated_at = now() WHERE subscriber = $1",
    )
    .bind(subscriber)
    .bind(next_txid)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

//! The `user_events` audit trail. Event data never holds PII: ids, field names, statuses,
//! HTTP statuses and timings only.

use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub id: Uuid,
    pub user_id: Uuid,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub at: OffsetDateTime,
    pub data: Json<serde_json::Value>,
}

pub async fn insert(
    conn: &mut PgConnection,
    user_id: Uuid,
    event_type: &str,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO user_events (id, user_id, type, data) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(event_type)
        .bind(Json(data))
        .execute(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Several events of one type in one statement, in the order given.
pub async fn insert_many(
    conn: &mut PgConnection,
    user_id: Uuid,
    event_type: &str,
    data: Vec<serde_json::Value>,
) -> Result<(), StoreError> {
    match data.len() {
        0 => return Ok(()),
        1 => {
            let one = data.into_iter().next().expect("one element");
            return insert(conn, user_id, event_type, one).await;
        }
        _ => {}
    }
    let ids: Vec<Uuid> = data.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO user_events (id, user_id, type, data)
         SELECT i.id, $2, $3, d.data
           FROM unnest($1::uuid[]) WITH ORDINALITY AS i(id, n)
           JOIN jsonb_array_elements($4) WITH ORDINALITY AS d(data, n) USING (n)
          ORDER BY n",
    )
    .bind(ids)
    .bind(user_id)
    .bind(event_type)
    .bind(Json(serde_json::Value::Array(data)))
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// A user's events, oldest first, after the event with sequence `after_seq` when given.
pub async fn for_user<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    after_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    sqlx::query_as::<_, EventRow>(
        "SELECT seq, id, user_id, type, at, data FROM user_events
          WHERE user_id = $1 AND ($2::bigint IS NULL OR seq > $2)
          ORDER BY seq LIMIT $3",
    )
    .bind(user_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

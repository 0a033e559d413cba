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

/// Events as the one JSON parameter of [`append_events!`]: `[{id, type, data}, …]`, in order.
pub(super) fn rows<'a>(
    events: impl IntoIterator<Item = (&'a str, &'a serde_json::Value)>,
) -> Json<serde_json::Value> {
    Json(serde_json::Value::Array(
        events
            .into_iter()
            .map(|(event_type, data)| {
                serde_json::json!({ "id": Uuid::now_v7(), "type": event_type, "data": data })
            })
            .collect(),
    ))
}

/// Appends events to the user's trail in one statement, in the order given.
pub async fn append(
    conn: &mut PgConnection,
    user_id: Uuid,
    events: &[(&str, serde_json::Value)],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(append_events!(user = "$1", events = "$2", when = "true"))
        .bind(user_id)
        .bind(rows(events.iter().map(|(t, d)| (*t, d))))
        .execute(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

pub async fn insert(
    conn: &mut PgConnection,
    user_id: Uuid,
    event_type: &str,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    append(conn, user_id, &[(event_type, data)]).await
}

/// Several events of one type in one statement, in the order given.
pub async fn insert_many(
    conn: &mut PgConnection,
    user_id: Uuid,
    event_type: &str,
    data: Vec<serde_json::Value>,
) -> Result<(), StoreError> {
    let events: Vec<(&str, serde_json::Value)> =
        data.into_iter().map(|d| (event_type, d)).collect();
    append(conn, user_id, &events).await
}

/// Every profile path the user's patches changed (`user_updated` events), each once, in order.
pub async fn updated_fields(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT DISTINCT field FROM user_events, jsonb_array_elements_text(data->'fields') AS field
          WHERE user_id = $1 AND type = 'user_updated' AND jsonb_typeof(data->'fields') = 'array'
          ORDER BY field",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
    .map_err(StoreError::from_sqlx)
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

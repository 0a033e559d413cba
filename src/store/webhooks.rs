//! The `webhook_events` table: every verified inbound provider webhook, stored before it is
//! applied, deduplicated by `(provider, provider_event_id)`.

use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

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

/// Stores the event; `None` when an event with the same provider event id is already stored
/// (a redelivery).
pub async fn insert(db: &PgPool, event: &NewWebhookEvent<'_>) -> Result<Option<Uuid>, StoreError> {
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO webhook_events
            (id, provider, provider_event_id, event_type, provider_user_id, signature_valid, raw_body)
         VALUES ($1, $2, $3, $4, $5, true, $6)
         ON CONFLICT ON CONSTRAINT webhook_events_provider_event_id_key DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(event.provider)
    .bind(event.provider_event_id)
    .bind(event.event_type)
    .bind(event.provider_user_id)
    .bind(event.raw_body)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(inserted)
}

/// Records what handling the event came to. `processed: false` leaves it for a retry
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
        "UPDATE webhook_events SET
            outcome = $2,
            processed_at = CASE WHEN $3 THEN now() ELSE NULL END,
            user_id = COALESCE($4, user_id),
            error = $5
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

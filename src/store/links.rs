//! The `provider_links` table: a user's account at each provider and its status.

use sqlx::types::Json;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkRow {
    pub user_id: Uuid,
    pub provider: String,
    pub provider_user_id: Option<String>,
    pub status: String,
    pub provider_status: Option<String>,
    pub requirements: Json<serde_json::Value>,
    pub last_error: Option<Json<serde_json::Value>>,
    pub submitted_at: Option<OffsetDateTime>,
    pub last_synced_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
}

/// The links of several users at once (one round trip for a whole list page).
pub async fn for_users<'e>(
    db: impl PgExecutor<'e>,
    user_ids: &[Uuid],
) -> Result<Vec<LinkRow>, StoreError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as::<_, LinkRow>(
        "SELECT user_id, provider, provider_user_id, status, provider_status, requirements,
                last_error, submitted_at, last_synced_at, updated_at
           FROM provider_links
          WHERE user_id = ANY($1)
          ORDER BY user_id, provider",
    )
    .bind(user_ids)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

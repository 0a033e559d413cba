//! The `users` table: the canonical profile (JSONB) and the indexed columns beside it.

use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;

pub const EXTERNAL_ID_CONSTRAINT: &str = "users_external_id_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub status: String,
    pub profile: Json<CanonicalUser>,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The columns of [`UserRow`], for `concat!` into static SQL.
macro_rules! user_columns {
    () => {
        "id, status, profile, version, created_at, updated_at"
    };
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    user: &CanonicalUser,
    status: LinkStatus,
) -> Result<UserRow, StoreError> {
    sqlx::query_as::<_, UserRow>(concat!(
        "INSERT INTO users (id, external_id, email, status, profile)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING ",
        user_columns!(),
        ""
    ))
    .bind(id)
    .bind(user.external_id.as_str())
    .bind(user.email.as_str())
    .bind(status.as_str())
    .bind(Json(user))
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

pub async fn get<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<UserRow>, StoreError> {
    sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Locks the user row for the rest of the transaction (PATCH, linking, status changes).
pub async fn get_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

pub async fn id_by_external_id<'e>(
    db: impl PgExecutor<'e>,
    external_id: &str,
) -> Result<Option<Uuid>, StoreError> {
    sqlx::query_scalar("SELECT id FROM users WHERE external_id = $1")
        .bind(external_id)
        .fetch_optional(db)
        .await
        .map_err(StoreError::from_sqlx)
}

pub async fn update_profile(
    conn: &mut PgConnection,
    id: Uuid,
    user: &CanonicalUser,
) -> Result<UserRow, StoreError> {
    sqlx::query_as::<_, UserRow>(concat!(
        "UPDATE users
            SET external_id = $2, email = $3, profile = $4,
                version = version + 1, updated_at = now()
          WHERE id = $1
      RETURNING ",
        user_columns!(),
        ""
    ))
    .bind(id)
    .bind(user.external_id.as_str())
    .bind(user.email.as_str())
    .bind(Json(user))
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// List filters; all optional, combined with AND.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub status: Option<LinkStatus>,
    pub provider: Option<String>,
}

/// One page, newest first. `before` is the last id of the previous page: ids are UUIDv7, so
/// users created while a client pages never shift the pages it has not read yet.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    filter: &UserFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u
          WHERE ($1::text IS NULL OR u.external_id = $1)
            AND ($2::text IS NULL OR lower(u.email) = lower($2))
            AND ($3::text IS NULL OR u.status = $3)
            AND ($4::text IS NULL OR EXISTS (
                    SELECT 1 FROM provider_links l WHERE l.user_id = u.id AND l.provider = $4))
            AND ($5::uuid IS NULL OR u.id < $5)
          ORDER BY u.id DESC
          LIMIT $6"
    ))
    .bind(filter.external_id.as_deref())
    .bind(filter.email.as_deref())
    .bind(filter.status.map(|s| s.as_str()))
    .bind(filter.provider.as_deref())
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Stores the user's summary status (recomputed from its links by the caller).
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: LinkStatus,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET status = $2, updated_at = now() WHERE id = $1 AND status <> $2")
        .bind(id)
        .bind(status.as_str())
        .execute(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

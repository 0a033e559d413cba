//! The `verification_sessions` table: the hosted verification sessions handed out, their URL
//! sealed (it carries the provider's session token), so an unexpired one can be handed out
//! again.

use std::fmt;

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::crypto::{row_aad, Keyring};
use crate::domain::provider::ProviderId;

fn url_aad(id: Uuid) -> Vec<u8> {
    row_aad("verification_sessions", "url", &id.to_string())
}

/// The keyed hash under which a caller's `redirect_url` is kept (the URL itself is not stored).
pub fn redirect_url_hash(keyring: &Keyring, redirect_url: &str) -> Vec<u8> {
    keyring.lookup_hash("verification_sessions.redirect_url", redirect_url)
}

/// A stored session, its URL opened.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id: Uuid,
    pub provider: ProviderId,
    /// Carries the provider's session token: never logged.
    pub url: String,
    pub expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A session to keep.
#[derive(Clone, Copy)]
pub struct NewSession<'a> {
    pub user_id: Uuid,
    pub provider: ProviderId,
    /// [`redirect_url_hash`] of the caller's `redirect_url`, when it gave one.
    pub redirect_url_hash: Option<&'a [u8]>,
    pub url: &'a str,
    pub expires_at: Option<OffsetDateTime>,
}

impl fmt::Debug for NewSession<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("user_id", &self.user_id)
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    provider: String,
    url: Vec<u8>,
    url_key_id: String,
    expires_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

impl SessionRow {
    fn open(self, keyring: &Keyring) -> Result<StoredSession, StoreError> {
        let provider = ProviderId::from_wire(&self.provider).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "verification_sessions {}: unknown provider {:?}",
                self.id, self.provider
            ))
        })?;
        let plain = keyring.open(&self.url_key_id, &self.url, &url_aad(self.id))?;
        let url = String::from_utf8(plain).map_err(|_| {
            StoreError::Corrupt(format!(
                "verification_sessions {}: url is not UTF-8",
                self.id
            ))
        })?;
        Ok(StoredSession {
            id: self.id,
            provider,
            url,
            expires_at: self.expires_at,
            created_at: self.created_at,
        })
    }
}

/// The newest session kept for the user at `provider` with this redirect (`None`: none).
pub async fn latest<'e>(
    db: impl PgExecutor<'e>,
    keyring: &Keyring,
    user_id: Uuid,
    provider: ProviderId,
    redirect_url_hash: Option<&[u8]>,
) -> Result<Option<StoredSession>, StoreError> {
    let row = sqlx::query_as::<_, SessionRow>(
        "SELECT id, provider, url, url_key_id, expires_at, created_at
           FROM verification_sessions
          WHERE user_id = $1 AND provider = $2 AND redirect_url_hash IS NOT DISTINCT FROM $3
          ORDER BY created_at DESC
          LIMIT 1",
    )
    .bind(user_id)
    .bind(provider.as_str())
    .bind(redirect_url_hash)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    row.map(|r| r.open(keyring)).transpose()
}

/// Keeps a new session, sealed, in place of the one kept for the same user, provider and
/// redirect. Returns it as stored.
pub async fn replace(
    conn: &mut PgConnection,
    keyring: &Keyring,
    session: &NewSession<'_>,
) -> Result<StoredSession, StoreError> {
    sqlx::query(
        "DELETE FROM verification_sessions
          WHERE user_id = $1 AND provider = $2 AND redirect_url_hash IS NOT DISTINCT FROM $3",
    )
    .bind(session.user_id)
    .bind(session.provider.as_str())
    .bind(session.redirect_url_hash)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    let id = Uuid::now_v7();
    let sealed = keyring.seal(session.url.as_bytes(), &url_aad(id));
    let created_at: OffsetDateTime = sqlx::query_scalar(
        "INSERT INTO verification_sessions
             (id, user_id, provider, redirect_url_hash, url, url_key_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING created_at",
    )
    .bind(id)
    .bind(session.user_id)
    .bind(session.provider.as_str())
    .bind(session.redirect_url_hash)
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .bind(session.expires_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(StoredSession {
        id,
        provider: session.provider,
        url: session.url.to_owned(),
        expires_at: session.expires_at,
        created_at,
    })
}

/// Erasure: deletes every session of the user.
pub async fn forget_user(conn: &mut PgConnection, user_id: Uuid) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM verification_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(conn)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected(),
    )
}

/// Sessions not sealed under `current_key_id`.
pub async fn count_stale_seals(pool: &PgPool, current_key_id: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT count(*) FROM verification_sessions WHERE url_key_id <> $1")
        .bind(current_key_id)
        .fetch_one(pool)
        .await
        .map_err(StoreError::from_sqlx)
}

/// Re-seals up to `limit` session URLs under the current key.
pub async fn reseal_batch(
    conn: &mut PgConnection,
    keyring: &Keyring,
    limit: i64,
) -> Result<u64, StoreError> {
    let rows: Vec<(Uuid, Vec<u8>, String)> = sqlx::query_as(
        "SELECT id, url, url_key_id FROM verification_sessions
          WHERE url_key_id <> $1
          LIMIT $2
          FOR UPDATE SKIP LOCKED",
    )
    .bind(keyring.current_key_id())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    let mut moved = 0;
    for (id, url, key_id) in rows {
        let plain = keyring.open(&key_id, &url, &url_aad(id))?;
        let sealed = keyring.seal(&plain, &url_aad(id));
        sqlx::query("UPDATE verification_sessions SET url = $2, url_key_id = $3 WHERE id = $1")
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

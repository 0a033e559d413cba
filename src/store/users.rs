//! The `users` table: the canonical profile, sealed (AES-256-GCM, see `crate::crypto`), and
//! the plain columns the API filters and joins on beside it. The e-mail filter uses a keyed hash.

use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::crypto::{row_aad, Keyring, Sealed};
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;

pub const EXTERNAL_ID_CONSTRAINT: &str = "users_external_id_key";

/// A user as stored, its profile opened. `profile` is `None` once the user was erased.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub status: String,
    pub profile: Option<CanonicalUser>,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub erased_at: Option<OffsetDateTime>,
}

/// The row as read, before its profile is opened.
#[derive(sqlx::FromRow)]
struct SealedUserRow {
    id: Uuid,
    status: String,
    /// Rows written before encryption (until the re-sealing pass moves them).
    profile: Option<Json<CanonicalUser>>,
    pii: Option<Vec<u8>>,
    pii_key_id: Option<String>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    erased_at: Option<OffsetDateTime>,
}

/// The columns of [`SealedUserRow`], for `concat!` into static SQL.
macro_rules! user_columns {
    () => {
        "id, status, profile, pii, pii_key_id, version, created_at, updated_at, erased_at"
    };
}

fn pii_aad(id: Uuid) -> Vec<u8> {
    row_aad("users", "pii", &id.to_string())
}

/// The keyed hash the e-mail filter compares (addresses compare case-insensitively).
pub fn email_hash(keyring: &Keyring, email: &str) -> Vec<u8> {
    keyring.lookup_hash("users.email", &email.to_lowercase())
}

fn seal_profile(keyring: &Keyring, id: Uuid, user: &CanonicalUser) -> Sealed {
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(user).expect("a canonical user always serialises"),
    );
    keyring.seal(&json, &pii_aad(id))
}

fn open_profile(
    keyring: &Keyring,
    id: Uuid,
    key_id: &str,
    sealed: &[u8],
) -> Result<CanonicalUser, StoreError> {
    let json = zeroize::Zeroizing::new(keyring.open(key_id, sealed, &pii_aad(id))?);
    serde_json::from_slice(&json)
        .map_err(|e| StoreError::Corrupt(format!("users.pii of {id}: {e}")))
}

impl SealedUserRow {
    fn open(self, keyring: &Keyring) -> Result<UserRow, StoreError> {
        let profile = match (self.pii, self.pii_key_id, self.profile) {
            (Some(sealed), Some(key_id), _) => {
                Some(open_profile(keyring, self.id, &key_id, &sealed)?)
            }
            (_, _, Some(Json(legacy))) => Some(legacy),
            _ => None,
        };
        Ok(UserRow {
            id: self.id,
            status: self.status,
            profile,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            erased_at: self.erased_at,
        })
    }
}

fn open_all(rows: Vec<SealedUserRow>, keyring: &Keyring) -> Result<Vec<UserRow>, StoreError> {
    rows.into_iter().map(|row| row.open(keyring)).collect()
}

pub async fn insert(
    conn: &mut PgConnection,
    keyring: &Keyring,
    id: Uuid,
    user: &CanonicalUser,
    status: LinkStatus,
) -> Result<(), StoreError> {
    let sealed = seal_profile(keyring, id, user);
    sqlx::query(
        "INSERT INTO users (id, external_id, email_hash, status, pii, pii_key_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(user.external_id.as_str())
    .bind(email_hash(keyring, user.email.as_str()))
    .bind(status.as_str())
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    keyring: &Keyring,
    id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    sqlx::query_as::<_, SealedUserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)?
    .map(|row| row.open(keyring))
    .transpose()
}

#[derive(sqlx::FromRow)]
struct SealedUserWithLinks {
    #[sqlx(flatten)]
    user: SealedUserRow,
    links: Json<Vec<super::links::LinkJson>>,
}

/// A user and its links in one statement: one round trip, and one snapshot, so the user's
/// summary status always matches the links shown (a statement sees a single snapshot).
/// `GET /v1/users/{id}` and the answers of create and patch read through here; the
/// benchmark's profile showed BEGIN, two SELECTs and COMMIT dominating a read.
pub async fn get_with_links<'e>(
    db: impl PgExecutor<'e>,
    keyring: &Keyring,
    id: Uuid,
) -> Result<Option<(UserRow, Vec<super::links::LinkRow>)>, StoreError> {
    let row = sqlx::query_as::<_, SealedUserWithLinks>(concat!(
        "SELECT ",
        user_columns!(),
        ", COALESCE((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.provider)
                       FROM provider_links l WHERE l.user_id = u.id), '[]'::jsonb) AS links
           FROM users u WHERE u.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    row.map(|r| {
        let links = r.links.0.into_iter().map(Into::into).collect();
        Ok((r.user.open(keyring)?, links))
    })
    .transpose()
}

/// Whether the user exists, without opening its profile.
pub async fn exists<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(id)
        .fetch_one(db)
        .await
        .map_err(StoreError::from_sqlx)
}

/// Locks the user row for the rest of the transaction (PATCH, linking, status changes).
pub async fn get_for_update(
    conn: &mut PgConnection,
    keyring: &Keyring,
    id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    sqlx::query_as::<_, SealedUserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(StoreError::from_sqlx)?
    .map(|row| row.open(keyring))
    .transpose()
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
    keyring: &Keyring,
    id: Uuid,
    user: &CanonicalUser,
) -> Result<(), StoreError> {
    let sealed = seal_profile(keyring, id, user);
    sqlx::query(
        "UPDATE users
            SET external_id = $2, email_hash = $3, pii = $4, pii_key_id = $5,
                profile = NULL, email = NULL, version = version + 1, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(user.external_id.as_str())
    .bind(email_hash(keyring, user.email.as_str()))
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
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
///
/// Erased users are not listed (their ids stay readable one by one, and their events).
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    keyring: &Keyring,
    filter: &UserFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    // Only the filters given go into the statement: a `($n IS NULL OR …)` form would be planned
    // once for every combination (prepared statements get generic plans), and the benchmark
    // caught that plan scanning the whole table instead of walking the primary key backwards.
    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.erased_at IS NULL"
    ));
    if let Some(external_id) = filter.external_id.as_deref() {
        query.push(" AND u.external_id = ").push_bind(external_id);
    }
    if let Some(email) = filter.email.as_deref() {
        query
            .push(" AND u.email_hash = ")
            .push_bind(email_hash(keyring, email));
    }
    if let Some(status) = filter.status {
        query.push(" AND u.status = ").push_bind(status.as_str());
    }
    if let Some(provider) = filter.provider.as_deref() {
        query
            .push(
                " AND EXISTS (SELECT 1 FROM provider_links l
                               WHERE l.user_id = u.id AND l.provider = ",
            )
            .push_bind(provider)
            .push(")");
    }
    if let Some(before) = before {
        query.push(" AND u.id < ").push_bind(before);
    }
    query.push(" ORDER BY u.id DESC LIMIT ").push_bind(limit);
    let rows = query
        .build_query_as::<SealedUserRow>()
        .fetch_all(db)
        .await
        .map_err(StoreError::from_sqlx)?;
    open_all(rows, keyring)
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

/// Locks the user row for erasure: `None` when there is no such user, `Some(erased_at)`
/// otherwise (no profile is opened).
pub async fn lock_erasure_state(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Option<OffsetDateTime>>, StoreError> {
    sqlx::query_scalar("SELECT erased_at FROM users WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(StoreError::from_sqlx)
}

/// Erases the user's personal data: the sealed profile, the e-mail hash and any legacy
/// plaintext go; id, external id, status and times stay for the audit trail. Returns the
/// erasure time (the first one, when the user was already erased).
pub async fn erase(conn: &mut PgConnection, id: Uuid) -> Result<OffsetDateTime, StoreError> {
    sqlx::query_scalar(
        "UPDATE users
            SET pii = NULL, pii_key_id = NULL, email_hash = NULL, profile = NULL, email = NULL,
                erased_at = COALESCE(erased_at, now()), updated_at = now()
          WHERE id = $1
      RETURNING erased_at",
    )
    .bind(id)
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Rows whose profile is not sealed under `current_key_id` (an older key, or plaintext from
/// before encryption).
pub async fn count_stale_seals<'e>(
    db: impl PgExecutor<'e>,
    current_key_id: &str,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM users
          WHERE (pii IS NOT NULL AND pii_key_id <> $1) OR profile IS NOT NULL",
    )
    .bind(current_key_id)
    .fetch_one(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Re-seals up to `limit` rows under the current key (one transaction; rows another instance
/// is re-sealing are skipped). Returns how many rows moved.
pub async fn reseal_batch(
    conn: &mut PgConnection,
    keyring: &Keyring,
    limit: i64,
) -> Result<u64, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Stale {
        id: Uuid,
        profile: Option<Json<CanonicalUser>>,
        pii: Option<Vec<u8>>,
        pii_key_id: Option<String>,
        email: Option<String>,
    }
    let rows = sqlx::query_as::<_, Stale>(
        "SELECT id, profile, pii, pii_key_id, email FROM users
          WHERE (pii IS NOT NULL AND pii_key_id <> $1) OR profile IS NOT NULL
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
        let profile = match (row.pii, row.pii_key_id, row.profile) {
            (Some(sealed), Some(key_id), _) => open_profile(keyring, row.id, &key_id, &sealed)?,
            (_, _, Some(Json(legacy))) => legacy,
            _ => continue,
        };
        let sealed = seal_profile(keyring, row.id, &profile);
        let email = row
            .email
            .unwrap_or_else(|| profile.email.as_str().to_owned());
        sqlx::query(
            "UPDATE users SET pii = $2, pii_key_id = $3, email_hash = $4, profile = NULL,
                    email = NULL
              WHERE id = $1",
        )
        .bind(row.id)
        .bind(&sealed.bytes)
        .bind(&sealed.key_id)
        .bind(email_hash(keyring, &email))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_sqlx)?;
        moved += 1;
    }
    Ok(moved)
}

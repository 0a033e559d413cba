//! The `users` table: the canonical profile, sealed (AES-256-GCM, see `crate::crypto`), and
//! the plain columns the API filters and joins on beside it. The e-mail filter uses a keyed hash.

use std::time::Duration;

use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::jobs::{JobKind, NewJob};
use super::links::LinkRow;
use super::StoreError;
use crate::crypto::{row_aad, Keyring, Sealed};
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;

pub const EXTERNAL_ID_CONSTRAINT: &str = "users_external_id_key";

/// A user as stored, its profile opened. `profile` is `None` once the user was erased.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    /// The summary of the links' statuses.
    pub status: LinkStatus,
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

/// [`user_columns`] of the table aliased `u` (in joins).
macro_rules! user_columns_of_u {
    () => {
        "u.id, u.status, u.profile, u.pii, u.pii_key_id, u.version, u.created_at, u.updated_at,
         u.erased_at"
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
        let status = LinkStatus::from_wire(&self.status).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "users {}: unknown status {:?}",
                self.id, self.status
            ))
        })?;
        let profile = match (self.pii, self.pii_key_id, self.profile) {
            (Some(sealed), Some(key_id), _) => {
                Some(open_profile(keyring, self.id, &key_id, &sealed)?)
            }
            (_, _, Some(Json(legacy))) => Some(legacy),
            _ => None,
        };
        Ok(UserRow {
            id: self.id,
            status,
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

/// A job written with a new user, already claimed by the request that will run it inline.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub queue_key: String,
    pub payload: serde_json::Value,
}

/// What a create writes, beside the sealed profile.
#[derive(Debug)]
pub struct NewUserGraph<'a> {
    pub providers: &'a [&'a str],
    pub jobs: &'a [ClaimedJob],
    pub max_attempts: u32,
    /// The claim: this instance holds the jobs for `lease`. Should it die before settling them,
    /// the lease runs out and a worker takes them with their outcome unknown (look first).
    pub worker: &'a str,
    pub lease: std::time::Duration,
    pub event_type: &'a str,
    pub event_data: serde_json::Value,
}

/// A new user with its pending links, its claimed submission jobs and its first event, in
/// one statement: one round trip and one commit for the whole create, atomic as a statement
/// is. Returns the user's `created_at`. (The links' and event's foreign keys are checked at the end of the statement, when the
/// user row is there.)
pub async fn insert_with_links(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: Uuid,
    user: &CanonicalUser,
    graph: &NewUserGraph<'_>,
) -> Result<OffsetDateTime, StoreError> {
    let sealed = seal_profile(keyring, id, user);
    let claim = Some((graph.worker, graph.lease));
    let jobs: Vec<NewJob<'_>> = graph
        .jobs
        .iter()
        .map(|job| NewJob {
            id: job.id,
            kind: job.kind,
            queue_key: &job.queue_key,
            payload: &job.payload,
            max_attempts: graph.max_attempts,
            delay: Duration::ZERO,
            claim,
        })
        .collect();
    sqlx::query_scalar(concat!(
        "WITH new_user AS (
              INSERT INTO users (id, external_id, email_hash, status, pii, pii_key_id)
              VALUES ($1, $2, $3, $4, $5, $6)
              RETURNING created_at),
          new_links AS (
              INSERT INTO provider_links (user_id, provider, status)
              SELECT $1, p, 'pending_submission' FROM unnest($7::text[]) AS p),
          new_jobs AS (",
        insert_jobs!(jobs = "$8"),
        "), first_event AS (",
        append_events!(user = "$1", events = "$9", when = "true"),
        ") SELECT created_at FROM new_user"
    ))
    .bind(id)
    .bind(user.external_id.as_str())
    .bind(email_hash(keyring, user.email.as_str()))
    .bind(LinkStatus::PendingSubmission.as_str())
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .bind(graph.providers)
    .bind(super::jobs::rows(&jobs))
    .bind(super::events::rows([(graph.event_type, &graph.event_data)]))
    .fetch_one(db)
    .await
    .map_err(StoreError::from_sqlx)
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

/// A user and its links in one statement: one round trip, and one snapshot, so the user's
/// summary status always matches the links shown (a statement sees a single snapshot). A join
/// rather than a JSON aggregate: Postgres spends less per read and nothing is parsed twice.
pub async fn get_with_links<'e>(
    db: impl PgExecutor<'e>,
    keyring: &Keyring,
    id: Uuid,
) -> Result<Option<(UserRow, Vec<LinkRow>)>, StoreError> {
    // Each row: the user's columns, then one of its links' as `link_*` (all `NULL` for a user
    // without links).
    let rows = sqlx::query(concat!(
        "SELECT ",
        user_columns_of_u!(),
        ",      l.user_id AS link_user_id, l.provider AS link_provider,
                l.provider_user_id AS link_provider_user_id,
                l.status AS link_status, l.provider_status AS link_provider_status,
                l.requirements AS link_requirements, l.last_error AS link_last_error,
                l.provider_data AS link_provider_data, l.needs_review AS link_needs_review,
                l.submitted_at AS link_submitted_at, l.last_synced_at AS link_last_synced_at,
                l.updated_at AS link_updated_at,
                l.provider_observed_at AS link_provider_observed_at, l.erasure AS link_erasure
           FROM users u LEFT JOIN provider_links l ON l.user_id = u.id
          WHERE u.id = $1
          ORDER BY l.provider"
    ))
    .bind(id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let user = SealedUserRow::from_row(first).map_err(StoreError::from_sqlx)?;
    let mut links = Vec::with_capacity(rows.len());
    for row in &rows {
        let has_link = row
            .try_get::<Option<&str>, _>("link_provider")
            .map_err(StoreError::from_sqlx)?
            .is_some();
        if has_link {
            links.push(LinkRow::from_columns(row, "link_").map_err(StoreError::from_sqlx)?);
        }
    }
    Ok(Some((user.open(keyring)?, links)))
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
    /// A link's id at its provider (at `provider`, when given).
    pub provider_user_id: Option<String>,
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
    //
    // With a provider, the page is driven by the links of that provider, newest user first
    // (`provider_links (provider, user_id)` in index order), each probing its user by primary
    // key, and the walk stops at the limit. The `OFFSET 0` keeps the planner from turning the
    // probe into a merge or hash join, which the soak caught walking or sorting tens of
    // thousands of users (1 s lists) when the provider's newest users were far back.
    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT ");
    query.push(user_columns_of_u!());
    let provider = filter.provider.as_deref();
    if provider.is_some() {
        query
            .push(" FROM provider_links l CROSS JOIN LATERAL (SELECT ")
            .push(user_columns_of_u!())
            .push(" FROM users u WHERE u.id = l.user_id AND u.erased_at IS NULL");
    } else {
        query.push(" FROM users u WHERE u.erased_at IS NULL");
    }
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
    if let Some(provider_user_id) = filter.provider_user_id.as_deref() {
        // Every provider named, so the `(provider, provider_user_id)` unique index serves the
        // lookup whether or not a provider was given.
        let providers: Vec<&str> = match provider {
            Some(p) => vec![p],
            None => crate::domain::provider::ProviderId::ALL
                .iter()
                .map(|p| p.as_str())
                .collect(),
        };
        query
            .push(" AND u.id IN (SELECT pl.user_id FROM provider_links pl WHERE pl.provider = ANY(")
            .push_bind(providers)
            .push(") AND pl.provider_user_id = ")
            .push_bind(provider_user_id)
            .push(")");
    }
    let order_key = match provider {
        Some(provider) => {
            query
                .push(" OFFSET 0) u WHERE l.provider = ")
                .push_bind(provider);
            "l.user_id"
        }
        None => "u.id",
    };
    if let Some(before) = before {
        query
            .push(format_args!(" AND {order_key} < "))
            .push_bind(before);
    }
    query
        .push(format_args!(" ORDER BY {order_key} DESC LIMIT "))
        .push_bind(limit);
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
    sqlx::query(set_summary_status!(
        user = "$1",
        status = "$2",
        when = "true"
    ))
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

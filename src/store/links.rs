//! The `provider_links` table: a user's account at each provider and its status.

use std::borrow::Cow;

use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor, Row};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::StoreError;
use crate::domain::provider::ProviderId;
use crate::domain::status::LinkStatus;

pub const PRIMARY_KEY: &str = "provider_links_pkey";

// Stored as its wire value in `provider_links.erasure`.
/// Where erasure stands at one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderErasure {
    /// A job is asking the provider to delete the account.
    Pending,
    /// The provider deleted (deactivated) the account.
    Deleted,
    /// The provider cannot be asked through its API (or refused): listed under
    /// `erasure_follow_up` in `GET /v1/reconciliation` for a person to follow up.
    ManualFollowUp,
    /// The user never reached this provider: nothing to delete there.
    NotSubmitted,
}

impl ProviderErasure {
    pub const ALL: [ProviderErasure; 4] = [
        ProviderErasure::Pending,
        ProviderErasure::Deleted,
        ProviderErasure::ManualFollowUp,
        ProviderErasure::NotSubmitted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderErasure::Pending => "pending",
            ProviderErasure::Deleted => "deleted",
            ProviderErasure::ManualFollowUp => "manual_follow_up",
            ProviderErasure::NotSubmitted => "not_submitted",
        }
    }

    /// Exact lookup of a stored value.
    pub fn from_wire(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw)
    }
}

/// A link as stored, its status, provider and erasure state decoded (an unknown stored value is
/// a [`StoreError::Corrupt`] naming the row).
#[derive(Debug, Clone)]
pub struct LinkRow {
    pub user_id: Uuid,
    pub provider: ProviderId,
    pub provider_user_id: Option<String>,
    pub status: LinkStatus,
    pub provider_status: Option<String>,
    pub requirements: Json<serde_json::Value>,
    pub last_error: Option<Json<serde_json::Value>>,
    pub provider_data: Json<serde_json::Map<String, serde_json::Value>>,
    pub needs_review: bool,
    pub submitted_at: Option<OffsetDateTime>,
    pub last_synced_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    /// The provider's time stamp of the newest state applied (orders status signals).
    pub provider_observed_at: Option<OffsetDateTime>,
    /// Erasure at the provider once the user was erased.
    pub erasure: Option<ProviderErasure>,
}

impl LinkRow {
    /// Decodes the link in the columns named `{prefix}{column}` of `row` (`prefix` is empty
    /// but in joins); an unknown status, provider or erasure state is an error naming the row.
    pub(super) fn from_columns(row: &PgRow, prefix: &str) -> Result<Self, sqlx::Error> {
        let column = |name: &'static str| -> Cow<'static, str> {
            if prefix.is_empty() {
                Cow::Borrowed(name)
            } else {
                Cow::Owned(format!("{prefix}{name}"))
            }
        };
        let user_id: Uuid = row.try_get(&*column("user_id"))?;
        let provider: String = row.try_get(&*column("provider"))?;
        let unknown = |what: &str, value: &str| {
            super::corrupt_row(format!(
                "provider_links (user {user_id}, provider {provider}): unknown {what} {value:?}"
            ))
        };
        let status: String = row.try_get(&*column("status"))?;
        let erasure: Option<String> = row.try_get(&*column("erasure"))?;
        Ok(LinkRow {
            user_id,
            provider: ProviderId::from_wire(&provider)
                .ok_or_else(|| unknown("provider", &provider))?,
            status: LinkStatus::from_wire(&status).ok_or_else(|| unknown("status", &status))?,
            erasure: match erasure.as_deref() {
                None => None,
                Some(raw) => Some(
                    ProviderErasure::from_wire(raw).ok_or_else(|| unknown("erasure state", raw))?,
                ),
            },
            provider_user_id: row.try_get(&*column("provider_user_id"))?,
            provider_status: row.try_get(&*column("provider_status"))?,
            requirements: row.try_get(&*column("requirements"))?,
            last_error: row.try_get(&*column("last_error"))?,
            provider_data: row.try_get(&*column("provider_data"))?,
            needs_review: row.try_get(&*column("needs_review"))?,
            submitted_at: row.try_get(&*column("submitted_at"))?,
            last_synced_at: row.try_get(&*column("last_synced_at"))?,
            updated_at: row.try_get(&*column("updated_at"))?,
            provider_observed_at: row.try_get(&*column("provider_observed_at"))?,
        })
    }
}

impl<'r> FromRow<'r, PgRow> for LinkRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        LinkRow::from_columns(row, "")
    }
}

macro_rules! link_columns {
    () => {
        "user_id, provider, provider_user_id, status, provider_status, requirements, last_error,
         provider_data, needs_review, submitted_at, last_synced_at, updated_at,
         provider_observed_at, erasure"
    };
}

/// The links of several users at once (one round trip for a whole list page).
/// How many links each provider has in each status (providers without links are absent).
pub async fn count_by_provider_and_status<'e>(
    db: impl PgExecutor<'e>,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    sqlx::query_as(
        "SELECT provider, status, count(*) FROM provider_links GROUP BY provider, status",
    )
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

pub async fn for_users<'e>(
    db: impl PgExecutor<'e>,
    user_ids: &[Uuid],
) -> Result<Vec<LinkRow>, StoreError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as::<_, LinkRow>(concat!(
        "SELECT ",
        link_columns!(),
        " FROM provider_links WHERE user_id = ANY($1) ORDER BY user_id, provider"
    ))
    .bind(user_ids)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// A new link waiting for its first submission.
pub async fn insert_pending(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: ProviderId,
) -> Result<LinkRow, StoreError> {
    sqlx::query_as::<_, LinkRow>(concat!(
        "INSERT INTO provider_links (user_id, provider, status)
         VALUES ($1, $2, 'pending_submission')
         RETURNING ",
        link_columns!()
    ))
    .bind(user_id)
    .bind(provider.as_str())
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Locks all of a user's links for the rest of the transaction, in provider order (the order
/// every writer locks them in). Holding them all keeps the user's summary status, computed from
/// them, from racing a concurrent change to another of its links.
pub async fn lock_user_links(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<LinkRow>, StoreError> {
    sqlx::query_as::<_, LinkRow>(concat!(
        "SELECT ",
        link_columns!(),
        " FROM provider_links WHERE user_id = $1 ORDER BY provider FOR UPDATE"
    ))
    .bind(user_id)
    .fetch_all(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// The rest of a link change in one statement: the events in the order given, the user's
/// summary status, and the job whose effect this is marked done (when given).
pub async fn record_change_outcome(
    conn: &mut PgConnection,
    user_id: Uuid,
    events: &[(&str, serde_json::Value)],
    summary_status: LinkStatus,
    succeeded_job: Option<Uuid>,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "WITH new_events AS (",
        append_events!(user = "$1", events = "$2", when = "true"),
        "), done_job AS (",
        complete_job!(id = "$4", when = "true"),
        ") ",
        set_summary_status!(user = "$1", status = "$3", when = "true")
    ))
    .bind(user_id)
    .bind(super::events::rows(events.iter().map(|(t, d)| (*t, d))))
    .bind(summary_status.as_str())
    .bind(succeeded_job)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// The link of a provider's user, if any. Kraken IIBANs are also matched ignoring spaces
/// (`AA00 TEST EXAM PLE1` and `AA00TESTEXAMPLE1` are the same account).
pub async fn find_by_provider_user_id(
    db: &sqlx::PgPool,
    provider: ProviderId,
    provider_user_id: &str,
) -> Result<Option<LinkRow>, StoreError> {
    let exact = sqlx::query_as::<_, LinkRow>(concat!(
        "SELECT ",
        link_columns!(),
        " FROM provider_links WHERE provider = $1 AND provider_user_id = $2"
    ))
    .bind(provider.as_str())
    .bind(provider_user_id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    if exact.is_some() {
        return Ok(exact);
    }
    let compact: String = provider_user_id
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if compact.is_empty() {
        return Ok(None);
    }
    sqlx::query_as::<_, LinkRow>(concat!(
        "SELECT ",
        link_columns!(),
        " FROM provider_links WHERE provider = $1 AND replace(provider_user_id, ' ', '') = $2
          LIMIT 1"
    ))
    .bind(provider.as_str())
    .bind(compact)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// What a provider call taught us about a link; `None` fields are left as they are.
#[derive(Debug, Default, Clone)]
pub struct LinkUpdate {
    pub provider_user_id: Option<String>,
    pub status: Option<LinkStatus>,
    pub provider_status: Option<String>,
    pub requirements: Option<serde_json::Value>,
    pub provider_data: Option<serde_json::Map<String, serde_json::Value>>,
    /// `Some(None)` clears the last error, `Some(Some(e))` sets it.
    pub last_error: Option<Option<serde_json::Value>>,
    pub needs_review: Option<bool>,
    pub mark_submitted: bool,
    pub mark_synced: bool,
    /// The provider's time stamp of the state applied; only ever moves forward.
    pub provider_observed_at: Option<OffsetDateTime>,
    /// For reconciliation: what the provider's answer maps to. `Some(None)` records an
    /// unmapped (unknown) status, `None` leaves the column as it is.
    pub provider_mapped_status: Option<Option<LinkStatus>>,
}

/// The SET list of a [`LinkUpdate`] (parameters `$3`–`$15`, bound by [`bind_link_update`]).
macro_rules! link_update_set {
    () => {
        "provider_user_id = COALESCE($3, provider_user_id),
         status           = COALESCE($4, status),
         provider_status  = COALESCE($5, provider_status),
         requirements     = COALESCE($6, requirements),
         provider_data    = provider_data || COALESCE($7, '{}'::jsonb),
         last_error       = CASE WHEN $8 THEN $9 ELSE last_error END,
         needs_review     = COALESCE($10, needs_review),
         submitted_at     = CASE WHEN $11 THEN COALESCE(submitted_at, now()) ELSE submitted_at END,
         last_synced_at   = CASE WHEN $12 THEN now() ELSE last_synced_at END,
         provider_observed_at = GREATEST(provider_observed_at, $13),
         provider_mapped_status = CASE WHEN $14 THEN $15 ELSE provider_mapped_status END,
         updated_at       = now()"
    };
}

pub async fn apply_update(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: ProviderId,
    update: &LinkUpdate,
) -> Result<LinkRow, StoreError> {
    bind_link_update(
        sqlx::query_as::<_, LinkRow>(concat!(
            "UPDATE provider_links SET ",
            link_update_set!(),
            " WHERE user_id = $1 AND provider = $2 RETURNING ",
            link_columns!()
        )),
        user_id,
        provider,
        update,
    )
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

type LinkQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, LinkRow, sqlx::postgres::PgArguments>;

/// Binds `$1` (user), `$2` (provider) and the update's `$3`–`$15`.
fn bind_link_update<'q>(
    query: LinkQuery<'q>,
    user_id: Uuid,
    provider: ProviderId,
    update: &'q LinkUpdate,
) -> LinkQuery<'q> {
    let (set_error, error) = match &update.last_error {
        None => (false, None),
        Some(e) => (true, e.as_ref().map(Json)),
    };
    let (set_mapped, mapped) = match &update.provider_mapped_status {
        None => (false, None),
        Some(m) => (true, m.map(|s| s.as_str())),
    };
    query
        .bind(user_id)
        .bind(provider.as_str())
        .bind(update.provider_user_id.as_deref())
        .bind(update.status.map(|s| s.as_str()))
        .bind(update.provider_status.as_deref())
        .bind(update.requirements.as_ref().map(Json))
        .bind(update.provider_data.as_ref().map(Json))
        .bind(set_error)
        .bind(error)
        .bind(update.needs_review)
        .bind(update.mark_submitted)
        .bind(update.mark_synced)
        .bind(update.provider_observed_at)
        .bind(set_mapped)
        .bind(mapped)
}

/// A new link's first answer recorded in one statement, when the link is as its create wrote
/// it: pending, never submitted, not being erased, no document waiting for it, and the user's
/// only link. Then the update,
/// the events (in order), the user's summary status (`summary_status`: what the link's new
/// status makes it, there being no other link) and the job's completion (when given) commit
/// together, with no transaction to open, no lock to take and no commit to send. `None` when the
/// link is not as assumed: nothing was written, and the caller records the answer under the
/// user's link locks instead.
pub async fn record_first_answer(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    provider: ProviderId,
    update: &LinkUpdate,
    events: &[(&str, serde_json::Value)],
    summary_status: LinkStatus,
    succeeded_job: Option<Uuid>,
) -> Result<Option<LinkRow>, StoreError> {
    bind_link_update(
        sqlx::query_as::<_, LinkRow>(concat!(
            "WITH updated AS (
                  UPDATE provider_links SET ",
            link_update_set!(),
            "      WHERE user_id = $1 AND provider = $2 AND status = 'pending_submission'
                     AND provider_user_id IS NULL AND erasure IS NULL
                     -- documents waiting for this account are queued by the locked path
                     AND NOT documents_waiting
                     AND NOT EXISTS (SELECT 1 FROM provider_links o
                                      WHERE o.user_id = $1 AND o.provider <> $2)
                  RETURNING ",
            link_columns!(),
            "),
              new_events AS (",
            append_events!(
                user = "$1",
                events = "$16",
                when = "EXISTS (SELECT 1 FROM updated)"
            ),
            "), done_job AS (",
            complete_job!(id = "$18", when = "EXISTS (SELECT 1 FROM updated)"),
            "), user_status AS (",
            set_summary_status!(
                user = "$1",
                status = "$17",
                when = "EXISTS (SELECT 1 FROM updated)"
            ),
            ")
             SELECT * FROM updated"
        )),
        user_id,
        provider,
        update,
    )
    .bind(super::events::rows(events.iter().map(|(t, d)| (*t, d))))
    .bind(summary_status.as_str())
    .bind(succeeded_job)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Records where erasure at the provider stands for one link.
pub async fn set_erasure(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: ProviderId,
    erasure: ProviderErasure,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE provider_links SET erasure = $3, updated_at = now()
          WHERE user_id = $1 AND provider = $2",
    )
    .bind(user_id)
    .bind(provider.as_str())
    .bind(erasure.as_str())
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

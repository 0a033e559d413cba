//! Create, read, list and patch users.

use std::collections::HashMap;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::OnboardingError;
use crate::domain::merge_patch::{apply_merge_patch, changed_paths};
use crate::domain::parse::parse_user;
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;
use crate::store::events::{self, EventRow};
use crate::store::links::{self, LinkRow};
use crate::store::users::{self, UserFilter, UserRow, EXTERNAL_ID_CONSTRAINT};

/// A user with its provider links, as the API shows it.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: UserRow,
    pub links: Vec<LinkRow>,
}

/// Persists a validated user and its creation event in one transaction.
pub async fn create(pool: &PgPool, user: CanonicalUser) -> Result<UserView, OnboardingError> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let row = match users::insert(&mut tx, id, &user, LinkStatus::PendingSubmission).await {
        Ok(row) => row,
        Err(e) if e.is_unique(EXTERNAL_ID_CONSTRAINT) => {
            drop(tx);
            let existing = users::id_by_external_id(pool, user.external_id.as_str()).await?;
            return Err(OnboardingError::UserAlreadyExists {
                existing_user_id: existing,
            });
        }
        Err(e) => return Err(e.into()),
    };
    events::insert(&mut tx, id, "user_created", json!({ "source": "api" })).await?;
    tx.commit().await?;
    Ok(UserView {
        user: row,
        links: Vec::new(),
    })
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<UserView, OnboardingError> {
    let user = users::get(pool, id)
        .await?
        .ok_or(OnboardingError::NotFound)?;
    let links = links::for_users(pool, &[id]).await?;
    Ok(UserView { user, links })
}

/// One page of users with their links (two queries, whatever the page size).
pub async fn list(
    pool: &PgPool,
    filter: &UserFilter,
    before: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<UserView>, bool), OnboardingError> {
    let mut rows = users::list(pool, filter, before, limit as i64 + 1).await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut by_user: HashMap<Uuid, Vec<LinkRow>> = HashMap::new();
    for link in links::for_users(pool, &ids).await? {
        by_user.entry(link.user_id).or_default().push(link);
    }
    let views = rows
        .into_iter()
        .map(|user| UserView {
            links: by_user.remove(&user.id).unwrap_or_default(),
            user,
        })
        .collect();
    Ok((views, has_more))
}

/// Applies a JSON merge patch (RFC 7396) under a row lock, re-validating the whole result
/// with the same rules as a create, so a patch can never produce a user a create would refuse.
pub async fn patch(
    pool: &PgPool,
    id: Uuid,
    patch: &serde_json::Value,
) -> Result<UserView, OnboardingError> {
    let mut tx = pool.begin().await?;
    let current = users::get_for_update(&mut tx, id)
        .await?
        .ok_or(OnboardingError::NotFound)?;
    let before =
        serde_json::to_value(&current.profile.0).expect("a stored user always serialises to JSON");
    let mut after = before.clone();
    apply_merge_patch(&mut after, patch);
    let updated = parse_user(&after).map_err(OnboardingError::Validation)?;
    // Compare the normalised forms, so `"de"` → `"DE"` is not reported as a change.
    let normalised_after =
        serde_json::to_value(&updated).expect("a parsed user always serialises to JSON");
    let changed = changed_paths(&before, &normalised_after);
    if changed.is_empty() {
        tx.rollback().await?;
        let links = links::for_users(pool, &[id]).await?;
        return Ok(UserView {
            user: current,
            links,
        });
    }
    let row = match users::update_profile(&mut tx, id, &updated).await {
        Ok(row) => row,
        Err(e) if e.is_unique(EXTERNAL_ID_CONSTRAINT) => {
            drop(tx);
            let existing = users::id_by_external_id(pool, updated.external_id.as_str()).await?;
            return Err(OnboardingError::UserAlreadyExists {
                existing_user_id: existing,
            });
        }
        Err(e) => return Err(e.into()),
    };
    events::insert(
        &mut tx,
        id,
        "user_updated",
        json!({ "source": "api", "fields": changed }),
    )
    .await?;
    let links = links::for_users(&mut *tx, &[id]).await?;
    tx.commit().await?;
    Ok(UserView { user: row, links })
}

/// A page of a user's audit trail, oldest first.
pub async fn events(
    pool: &PgPool,
    id: Uuid,
    after_seq: Option<i64>,
    limit: usize,
) -> Result<(Vec<EventRow>, bool), OnboardingError> {
    if users::get(pool, id).await?.is_none() {
        return Err(OnboardingError::NotFound);
    }
    let mut rows = events::for_user(pool, id, after_seq, limit as i64 + 1).await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, has_more))
}

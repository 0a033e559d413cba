//! Create, read, list and patch users.

use std::collections::HashMap;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use std::time::Duration;

use super::actions;
use super::links::{self as link_ops, Source};
use super::operator::Operator;
use super::queue::{enqueue_link_job, queue_key, LinkJob};
use super::{OnboardingError, Services};
use crate::domain::masking::{self, RevealableField};
use crate::domain::merge_patch::{apply_merge_patch, changed_paths};
use crate::domain::operator::Reason;
use crate::domain::parse::parse_user;
use crate::domain::provider::ProviderId;
use crate::domain::status::{summarize, LinkStatus};
use crate::domain::user::CanonicalUser;
use crate::domain::verification::{DocumentType, NextAction, NextActionKind};
use crate::domain::FieldError;
use crate::providers::connector::FieldPolicy;
use crate::providers::requirements::missing_fields;
use crate::providers::routing::route;
use crate::store::events::{self, EventRow};
use crate::store::jobs::JobKind;
use crate::store::links::{self, LinkRow};
use crate::store::users::{
    self, ClaimedJob, NewUserGraph, UserFilter, UserRow, EXTERNAL_ID_CONSTRAINT,
};

/// A user with its profile and provider links, as the API shows it.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: UserRow,
    pub profile: CanonicalUser,
    pub links: Vec<LinkRow>,
}

impl UserView {
    /// An erased user has no profile to show: `410 Gone` rather than a hollow user.
    fn new(mut user: UserRow, links: Vec<LinkRow>) -> Result<Self, OnboardingError> {
        let Some(profile) = user.profile.take() else {
            return Err(OnboardingError::Erased {
                erased_at: user.erased_at,
            });
        };
        Ok(Self {
            user,
            profile,
            links,
        })
    }
}

/// The requirement errors of `user` for each of `providers` (one entry per missing field).
fn requirement_errors(providers: &[ProviderId], user: &CanonicalUser) -> Vec<FieldError> {
    providers
        .iter()
        .flat_map(|provider| missing_fields(*provider, user))
        .collect()
}

/// Routes, checks each provider's requirements, persists the user with one pending link per
/// provider (one transaction), then submits to the providers concurrently. A provider that
/// fails or times out does not fail the create: its link stays `pending_submission` with the
/// error recorded.
///
/// `request` is the creating request's fingerprint (see `users.created_by_request`): a retry of a
/// create that committed the user but could not answer meets its own user, and gets it.
pub async fn create(
    services: &Services,
    user: CanonicalUser,
    requested: Option<Vec<ProviderId>>,
    request: Option<&[u8]>,
) -> Result<UserView, OnboardingError> {
    let providers = route(
        requested.as_deref(),
        &user,
        &services.routing,
        &services.providers,
    )
    .map_err(OnboardingError::Validation)?;
    let unmet = requirement_errors(&providers, &user);
    if !unmet.is_empty() {
        return Err(OnboardingError::ProviderRequirementsUnmet(unmet));
    }
    let pool = &services.pool;
    let id = Uuid::now_v7();
    let names: Vec<&str> = providers.iter().map(|p| p.as_str()).collect();
    let jobs: Vec<ClaimedJob> = providers
        .iter()
        .map(|provider| {
            let job = LinkJob {
                user_id: id,
                provider: *provider,
                fields: Vec::new(),
            };
            ClaimedJob {
                id: Uuid::now_v7(),
                kind: JobKind::SubmitLink,
                queue_key: queue_key(id, *provider),
                payload: serde_json::to_value(&job).expect("a link job serialises"),
            }
        })
        .collect();
    let graph = NewUserGraph {
        providers: &names,
        jobs: &jobs,
        max_attempts: services.workers.max_attempts,
        worker: &services.instance,
        lease: Duration::from_secs(services.workers.lease_secs),
        event_type: "user_created",
        event_data: json!({ "source": "api", "providers": names }),
        created_by_request: request,
    };
    let created_at = match users::insert_with_links(pool, &services.keyring, id, &user, &graph)
        .await
    {
        Ok(created_at) => created_at,
        Err(e) if e.is_unique(EXTERNAL_ID_CONSTRAINT) => {
            let existing = users::creator_by_external_id(pool, user.external_id.as_str()).await?;
            return match existing {
                // This very request, retried: it committed the user, then failed to answer.
                // Its submissions are durable jobs already; the user is answered as it is.
                Some((existing, Some(creator))) if Some(creator.as_slice()) == request => {
                    tracing::info!(user_id = %existing, "create retried after its commit");
                    get(services, existing).await
                }
                _ => Err(OnboardingError::UserAlreadyExists {
                    existing_user_id: existing.map(|(id, _)| id),
                }),
            };
        }
        Err(e) => return Err(e.into()),
    };
    // The submissions are durable jobs, claimed by this request: run them now for a fast answer.
    let written =
        crate::onboarding::jobs::run_claimed(services, &jobs, graph.max_attempts, &user).await;
    match written.as_slice() {
        // One provider, its answer recorded in one statement with the user's summary status: the
        // user is as this request wrote it, no need to read it back.
        [Some(link)] => Ok(as_written(id, user, created_at, link)),
        _ => get(services, id).await,
    }
}

/// A new user with one link, as the create's two statements wrote it: the summary status is the
/// link's, set (with `updated_at`) by the statement that recorded the link's answer.
fn as_written(
    id: Uuid,
    profile: CanonicalUser,
    created_at: time::OffsetDateTime,
    link: &LinkRow,
) -> UserView {
    let status = summarize(&[link.status]);
    let updated_at = if status == LinkStatus::PendingSubmission {
        created_at
    } else {
        link.updated_at
    };
    UserView {
        user: UserRow {
            id,
            status,
            profile: None,
            version: 1,
            created_at,
            updated_at,
            erased_at: None,
        },
        profile,
        links: vec![link.clone()],
    }
}

async fn submission_job(
    tx: &mut sqlx::PgConnection,
    services: &Services,
    user_id: Uuid,
    provider: ProviderId,
) -> Result<Uuid, OnboardingError> {
    enqueue_link_job(
        tx,
        JobKind::SubmitLink,
        &LinkJob {
            user_id,
            provider,
            fields: Vec::new(),
        },
        services.workers.max_attempts,
    )
    .await
}

async fn run_inline(services: &Services, job_ids: &[Uuid]) {
    crate::onboarding::jobs::run_inline(services, &services.workers, job_ids, &services.instance)
        .await;
}

/// Onboards an existing user at one more provider (same requirement checks as a create).
pub async fn link_provider(
    services: &Services,
    id: Uuid,
    provider: ProviderId,
) -> Result<UserView, OnboardingError> {
    let pool = &services.pool;
    let current = get(services, id).await?;
    if current.links.iter().any(|l| l.provider == provider) {
        return Err(OnboardingError::AlreadyLinked);
    }
    if let Some(reason) = services.providers.unavailable_reason(provider) {
        return Err(OnboardingError::Validation(vec![FieldError {
            field: "provider".into(),
            code: "provider_unavailable",
            message: format!("{} cannot be used: {reason}", provider.as_str()),
        }]));
    }
    let user = current.profile.clone();
    let unmet = requirement_errors(&[provider], &user);
    if !unmet.is_empty() {
        return Err(OnboardingError::ProviderRequirementsUnmet(unmet));
    }
    let mut tx = pool.begin().await?;
    match links::insert_pending(&mut tx, id, provider).await {
        Ok(_) => {}
        Err(e) if e.is_unique(links::PRIMARY_KEY) => return Err(OnboardingError::AlreadyLinked),
        Err(e) => return Err(e.into()),
    }
    let job_id = submission_job(&mut tx, services, id, provider).await?;
    // The documents already uploaded go to the new provider too, once its account exists.
    super::documents::for_new_link(&mut tx, services, id, provider).await?;
    events::insert(
        &mut tx,
        id,
        "provider_linked",
        json!({ "source": "api", "provider": provider.as_str() }),
    )
    .await?;
    link_ops::refresh_user_status(&mut tx, id).await?;
    tx.commit().await?;
    run_inline(services, &[job_id]).await;
    get(services, id).await
}

/// Fetches every submitted link's status from its provider now (only `provider`'s, when
/// given), after recording who asked and why (`sync_requested`).
pub async fn sync(
    services: &Services,
    id: Uuid,
    provider: Option<ProviderId>,
    operator: Operator<'_>,
) -> Result<UserView, OnboardingError> {
    let current = get(services, id).await?;
    if let Some(provider) = provider {
        if !current
            .links
            .iter()
            .any(|l| l.provider == provider && l.provider_user_id.is_some())
        {
            return Err(OnboardingError::Validation(vec![FieldError {
                field: "provider".into(),
                code: "invalid_value",
                message: format!("the user has no submitted link at {provider}"),
            }]));
        }
    }
    let mut conn = services.pool.acquire().await?;
    events::insert(
        &mut conn,
        id,
        "sync_requested",
        json!({
            "provider": provider.map(|p| p.as_str()),
            "reason": operator.reason.map(Reason::as_str),
            "key_name": operator.key_name,
        }),
    )
    .await?;
    drop(conn);
    let syncs = current
        .links
        .iter()
        .filter(|l| l.provider_user_id.is_some())
        .filter(|l| provider.is_none_or(|p| l.provider == p))
        .map(|l| link_ops::sync(services, l, Source::Api));
    for result in futures_util::future::join_all(syncs).await {
        result?;
    }
    get(services, id).await
}

pub async fn get(services: &Services, id: Uuid) -> Result<UserView, OnboardingError> {
    // One statement, so one snapshot: the summary status always matches the links.
    let (user, links) = users::get_with_links(&services.pool, &services.keyring, id)
        .await?
        .ok_or(OnboardingError::NotFound)?;
    UserView::new(user, links)
}

/// What one provider still needs from a user.
#[derive(Debug, Clone)]
pub struct ProviderRequirements {
    pub provider: ProviderId,
    /// The user's link there, if any.
    pub link: Option<LinkRow>,
    /// Canonical fields the user lacks for the provider (and values it cannot take).
    pub missing_fields: Vec<FieldError>,
    /// What the provider asks next, then the gateway's own missing fields as one action.
    pub actions: Vec<NextAction>,
}

/// `code` of the action listing the canonical fields the gateway itself finds missing for a
/// provider (some providers, like those without structured requirements, never say).
pub const MISSING_FIELDS_ACTION: &str = "missing_fields";

/// For every linked provider and every available one the user could be linked to: the missing
/// canonical fields, and the next actions (the provider's mapped values, then the missing fields
/// as one `update_field`).
pub async fn requirements(
    services: &Services,
    id: Uuid,
) -> Result<Vec<ProviderRequirements>, OnboardingError> {
    let view = get(services, id).await?;
    let mut out = Vec::new();
    for provider in ProviderId::ALL {
        let link = view.links.iter().find(|l| l.provider == *provider);
        if link.is_none() && !services.providers.is_available(*provider) {
            continue;
        }
        let missing = missing_fields(*provider, &view.profile);
        let mut next = match link {
            Some(link) => {
                // What the provider already has, so an action asks only for what is missing.
                let submitted: Vec<DocumentType> =
                    crate::store::documents::submitted_types(&services.pool, id, *provider).await?;
                actions::next_actions(link, &submitted)
            }
            None => Vec::new(),
        };
        if !missing.is_empty() {
            next.push(NextAction {
                fields: missing.iter().map(|e| e.field.clone()).collect(),
                ..NextAction::new(MISSING_FIELDS_ACTION, NextActionKind::UpdateField)
            });
        }
        out.push(ProviderRequirements {
            provider: *provider,
            link: link.cloned(),
            missing_fields: missing,
            actions: next,
        });
    }
    Ok(out)
}

/// One page of users with their links (two queries, whatever the page size).
pub async fn list(
    services: &Services,
    filter: &UserFilter,
    before: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<UserView>, bool), OnboardingError> {
    let pool = &services.pool;
    let mut rows = users::list(pool, &services.keyring, filter, before, limit as i64 + 1).await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut by_user: HashMap<Uuid, Vec<LinkRow>> = HashMap::new();
    for link in links::for_users(pool, &ids).await? {
        by_user.entry(link.user_id).or_default().push(link);
    }
    let views = rows
        .into_iter()
        .map(|user| {
            let links = by_user.remove(&user.id).unwrap_or_default();
            UserView::new(user, links)
        })
        .collect::<Result<_, _>>()?;
    Ok((views, has_more))
}

/// Applies a JSON merge patch (RFC 7396) under a row lock, re-validating the whole result
/// with the same rules as a create, so a patch can never produce a user a create would refuse.
pub async fn patch(
    services: &Services,
    id: Uuid,
    patch: &serde_json::Value,
) -> Result<UserView, OnboardingError> {
    let pool = &services.pool;
    let mut tx = pool.begin().await?;
    let current = users::get_for_update(&mut tx, &services.keyring, id)
        .await?
        .ok_or(OnboardingError::NotFound)?;
    let current_links = links::for_users(&mut *tx, &[id]).await?;
    let current = UserView::new(current, current_links)?;
    let before =
        serde_json::to_value(&current.profile).expect("a stored user always serialises to JSON");
    let mut after = before.clone();
    apply_merge_patch(&mut after, patch);
    let updated = parse_user(&after).map_err(OnboardingError::Validation)?;
    // Compare the normalised forms, so `"de"` → `"DE"` is not reported as a change.
    let normalised_after =
        serde_json::to_value(&updated).expect("a parsed user always serialises to JSON");
    let changed = changed_paths(&before, &normalised_after);
    if changed.is_empty() {
        tx.rollback().await?;
        return Ok(current);
    }
    // Each linked provider takes the changes it can; one it cannot take refuses the patch.
    // A link not submitted yet gets an update job too: its submission may be in flight with the
    // profile as it was before this patch (found by the chaos run: the patch never reached
    // the provider). The job runs after the submission (same queue) and sends the current
    // values once the link has an account; when it has none, the submission to come will.
    let mut refused = Vec::new();
    let mut outgoing: Vec<(&LinkRow, Vec<String>)> = Vec::new();
    for link in &current.links {
        let Some(connector) = services.providers.connector(link.provider) else {
            continue;
        };
        let submitted = link.provider_user_id.is_some();
        let mut send = Vec::new();
        for path in &changed {
            match connector.field_policy(path) {
                FieldPolicy::Send => send.push(path.clone()),
                FieldPolicy::Ignore => {}
                // Not onboarded yet: the submission carries the field, nothing to refuse.
                FieldPolicy::Refuse if !submitted => {}
                FieldPolicy::Refuse => refused.push(FieldError {
                    field: path.clone(),
                    code: "field_not_updatable",
                    message: format!(
                        "{} cannot change this field after onboarding",
                        link.provider
                    ),
                }),
            }
        }
        if !send.is_empty() {
            outgoing.push((link, send));
        }
    }
    if !refused.is_empty() {
        return Err(OnboardingError::FieldNotUpdatable(refused));
    }
    match users::update_profile(&mut tx, &services.keyring, id, &updated).await {
        Ok(_) => {}
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
    // One durable update job per provider, in the same transaction as the change; jobs of one
    // link run in order, so a later patch never reaches a provider before an earlier one.
    let mut job_ids = Vec::with_capacity(outgoing.len());
    for (link, fields) in outgoing {
        let provider = link.provider;
        job_ids.push(
            enqueue_link_job(
                &mut tx,
                JobKind::UpdateLink,
                &LinkJob {
                    user_id: id,
                    provider,
                    fields,
                },
                services.workers.max_attempts,
            )
            .await?,
        );
    }
    tx.commit().await?;
    run_inline(services, &job_ids).await;
    get(services, id).await
}

/// The values of `fields`, after recording the reveal (field names, reason and key name; never
/// the values) in the user's audit trail: no value is shown without its record.
pub async fn reveal(
    services: &Services,
    id: Uuid,
    fields: &[RevealableField],
    reason: &Reason,
    key_name: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, OnboardingError> {
    let view = get(services, id).await?;
    let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    let mut conn = services.pool.acquire().await?;
    events::insert(
        &mut conn,
        id,
        "pii_revealed",
        json!({ "fields": names, "reason": reason.as_str(), "key_name": key_name }),
    )
    .await?;
    Ok(fields
        .iter()
        .map(|f| (f.as_str().to_owned(), masking::reveal(&view.profile, *f)))
        .collect())
}

/// A page of a user's audit trail, oldest first.
pub async fn events(
    pool: &PgPool,
    id: Uuid,
    after_seq: Option<i64>,
    limit: usize,
) -> Result<(Vec<EventRow>, bool), OnboardingError> {
    // Erased users keep their audit trail (ids, times and statuses only).
    if !users::exists(pool, id).await? {
        return Err(OnboardingError::NotFound);
    }
    let mut rows = events::for_user(pool, id, after_seq, limit as i64 + 1).await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, has_more))
}

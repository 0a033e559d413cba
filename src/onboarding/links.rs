//! Talking to providers for one link: submit, update, sync; and recording what they answer
//! (link state, `provider_call` and `status_changed` events, the user's summary status).
//!
//! Provider calls happen outside database transactions (they can take seconds); their results
//! are then written in one short transaction under the user's link locks (`LockedChange`), or,
//! for a create's first answer, in one statement (`FreshChange`).

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::actions;
use super::attempt::Attempt;
use super::calls::{addressable, call_events, error_json, now_rfc3339};
use super::{OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::domain::status::{summarize, LinkStatus};
use crate::domain::user::CanonicalUser;

use crate::providers::connector::{
    AfterUnknownOutcome, CallLog, CreateRequest, FieldPolicy, ProviderUserState,
};
use crate::providers::error::{ProviderError, ProviderErrorKind};
use crate::store::links::{self, LinkRow, LinkUpdate};
use crate::store::{events, users};

/// Where a status signal came from (`api`, `webhook`, `poll`; README "Status").
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Api,
    Webhook,
    Poll,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Webhook => "webhook",
            Source::Poll => "poll",
        }
    }
}

/// Whether a link may move from `from` to `to`. A final decision (`rejected`, `closed`) is never
/// overwritten; a submitted link never falls back to `pending_submission`.
pub fn transition_allowed(from: LinkStatus, to: LinkStatus) -> bool {
    if from == to || from.is_final() {
        return false;
    }
    !(to == LinkStatus::PendingSubmission && from != LinkStatus::SubmissionFailed)
}

/// Recomputes and stores the user's summary status from all its links.
pub(crate) async fn refresh_user_status(
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
) -> Result<(), OnboardingError> {
    let statuses: Vec<LinkStatus> = links::for_users(&mut *tx, &[user_id])
        .await?
        .iter()
        .map(|l| l.status)
        .collect();
    users::set_status(tx, user_id, summarize(&statuses)).await?;
    Ok(())
}

/// What recording a provider's answer on a link needs, whichever way it is written: the link
/// as it stands, events to add, and updates to the link.
trait Recording {
    /// The link as last written (or, for a [`FreshChange`], as it will be written).
    fn link(&self) -> &LinkRow;
    fn event(&mut self, event_type: &'static str, data: serde_json::Value);
    async fn update(&mut self, update: &LinkUpdate) -> Result<(), OnboardingError>;
}

/// One provider answer recorded on one link under locks: a short transaction holding all the
/// user's links (so the summary status cannot race another link's change), with the events
/// collected and written, with the summary status and the job's completion, in one statement
/// at the end. Four round trips in all: BEGIN, the lock, the link's update, that last statement
/// (+ COMMIT).
struct LockedChange {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The link as last written in this transaction.
    link: LinkRow,
    /// The user's other links (their statuses feed the summary).
    others: Vec<LinkRow>,
    events: Vec<(&'static str, serde_json::Value)>,
}

impl LockedChange {
    /// Locks the user's links; `None` when the link is gone (its user erased and removed).
    async fn begin(
        services: &Services,
        user_id: Uuid,
        provider: ProviderId,
    ) -> Result<Option<Self>, OnboardingError> {
        let mut tx = services.pool.begin().await?;
        let mut all = links::lock_user_links(&mut tx, user_id).await?;
        let Some(position) = all.iter().position(|l| l.provider == provider) else {
            return Ok(None);
        };
        let link = all.remove(position);
        Ok(Some(Self {
            tx,
            link,
            others: all,
            events: Vec::new(),
        }))
    }

    fn calls(&mut self, log: &CallLog) {
        self.events.extend(call_events(log));
    }

    /// Writes the collected events now (before a step that writes its own).
    async fn flush_events(&mut self) -> Result<(), OnboardingError> {
        let collected = std::mem::take(&mut self.events);
        events::append(&mut self.tx, self.link.user_id, &collected).await?;
        Ok(())
    }

    fn summary(&self) -> LinkStatus {
        let statuses: Vec<LinkStatus> = self
            .others
            .iter()
            .chain(std::iter::once(&self.link))
            .map(|l| l.status)
            .collect();
        summarize(&statuses)
    }

    /// Writes the events and the summary status, marks `succeeded_job` done, and commits.
    async fn commit(mut self, succeeded_job: Option<Uuid>) -> Result<(), OnboardingError> {
        let summary = self.summary();
        links::record_change_outcome(
            &mut self.tx,
            self.link.user_id,
            &self.events,
            summary,
            succeeded_job,
        )
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl Recording for LockedChange {
    fn link(&self) -> &LinkRow {
        &self.link
    }

    fn event(&mut self, event_type: &'static str, data: serde_json::Value) {
        self.events.push((event_type, data));
    }

    async fn update(&mut self, update: &LinkUpdate) -> Result<(), OnboardingError> {
        self.link =
            links::apply_update(&mut self.tx, self.link.user_id, self.link.provider, update)
                .await?;
        Ok(())
    }
}

/// A create's first answer, recorded optimistically: the link is taken to be as the create
/// wrote it (pending, never submitted, the user's only one), and the update, events, summary
/// status and job completion go in one statement that only writes if that holds
/// (`store::links::record_first_answer`): no transaction, lock or commit. When it does not
/// hold (an erasure or a second link came in between), or the answer needs more than one
/// update, nothing is written and the answer is recorded again as a [`LockedChange`].
struct FreshChange {
    pool: sqlx::PgPool,
    /// The link as it will be written.
    link: LinkRow,
    events: Vec<(&'static str, serde_json::Value)>,
    /// The one update to write with the rest.
    deferred: Option<LinkUpdate>,
    /// The answer needs more than the one statement can do: record it under locks.
    needs_lock: bool,
}

impl FreshChange {
    /// The link as a create just wrote it, the user's only one: pending, never submitted.
    fn assume(services: &Services, user_id: Uuid, provider: ProviderId) -> Self {
        let link = LinkRow {
            user_id,
            provider,
            provider_user_id: None,
            status: LinkStatus::PendingSubmission,
            provider_status: None,
            requirements: sqlx::types::Json(serde_json::Value::Array(Vec::new())),
            last_error: None,
            provider_data: sqlx::types::Json(serde_json::Map::new()),
            needs_review: false,
            submitted_at: None,
            last_synced_at: None,
            updated_at: OffsetDateTime::now_utc(),
            provider_observed_at: None,
            erasure: None,
        };
        Self {
            pool: services.pool.clone(),
            link,
            events: Vec::new(),
            deferred: None,
            needs_lock: false,
        }
    }

    /// Writes everything in one statement, marking `succeeded_job` done. The link as written,
    /// or `None` when the link was not as assumed: nothing was written.
    async fn record(self, succeeded_job: Option<Uuid>) -> Result<Option<LinkRow>, OnboardingError> {
        if self.needs_lock {
            return Ok(None);
        }
        // The user's only link: the summary is its status.
        let summary = summarize(&[self.link.status]);
        Ok(links::record_first_answer(
            &self.pool,
            self.link.user_id,
            self.link.provider,
            &self.deferred.unwrap_or_default(),
            &self.events,
            summary,
            succeeded_job,
        )
        .await?)
    }
}

impl Recording for FreshChange {
    fn link(&self) -> &LinkRow {
        &self.link
    }

    fn event(&mut self, event_type: &'static str, data: serde_json::Value) {
        self.events.push((event_type, data));
    }

    async fn update(&mut self, update: &LinkUpdate) -> Result<(), OnboardingError> {
        if self.deferred.is_some() {
            self.needs_lock = true;
        } else {
            if let Some(status) = update.status {
                self.link.status = status;
            }
            self.deferred = Some(update.clone());
        }
        Ok(())
    }
}

/// Whether a provider state stamped `observed_at` is older than the newest one applied to the
/// link. States without a stamp are never stale (the provider does not say).
fn is_stale(link: &LinkRow, state: &ProviderUserState) -> bool {
    matches!(
        (state.observed_at, link.provider_observed_at),
        (Some(observed), Some(newest)) if observed < newest
    )
}

/// Writes a provider's view of a link: ids, raw status, requirements, and the canonical status
/// when the transition is allowed (with a `status_changed` event). An unknown raw status keeps
/// the last canonical status and flags the link for review. A state older than the newest one
/// applied (by the provider's own time stamp) is not applied at all: a
/// `status_signal_ignored` event with reason `stale` records it.
async fn apply_state(
    change: &mut impl Recording,
    state: &ProviderUserState,
    source: Source,
    mark_submitted: bool,
) -> Result<(), OnboardingError> {
    let link = change.link();
    let current = link.status;
    if is_stale(link, state) {
        let data = json!({
            "provider": link.provider,
            "reason": "stale",
            "source": source.as_str(),
            "status": current.as_str(),
            "provider_status": state.provider_status,
            "observed_at": state.observed_at.and_then(|t| t.format(&Rfc3339).ok()),
            "newest_observed_at": link.provider_observed_at.and_then(|t| t.format(&Rfc3339).ok()),
        });
        change.event("status_signal_ignored", data);
        return Ok(());
    }
    let mut update = LinkUpdate {
        provider_user_id: Some(state.provider_user_id.clone()),
        provider_status: Some(state.provider_status.clone()),
        requirements: Some(serde_json::Value::Array(state.requirements.clone())),
        provider_data: Some(state.link_data.clone()),
        last_error: Some(None),
        mark_submitted,
        mark_synced: true,
        provider_observed_at: state.observed_at,
        // Reconciliation: what the provider's answer maps to, even when the transition is refused.
        provider_mapped_status: Some(state.status),
        ..LinkUpdate::default()
    };
    let event = match state.status {
        Some(next) if transition_allowed(current, next) => {
            update.status = Some(next);
            update.needs_review = Some(false);
            Some((
                "status_changed",
                json!({
                    "provider": link.provider,
                    "from": current.as_str(),
                    "to": next.as_str(),
                    "source": source.as_str(),
                    "provider_status": state.provider_status,
                }),
            ))
        }
        Some(_) => None,
        None => {
            update.needs_review = Some(true);
            // A first submission with an unknown status still counts as submitted.
            if current == LinkStatus::PendingSubmission && mark_submitted {
                update.status = Some(LinkStatus::UnderReview);
            }
            Some((
                "provider_status_unrecognized",
                json!({
                    "provider": link.provider,
                    "provider_status": state.provider_status,
                    "source": source.as_str(),
                    "flagged_for_review": true,
                }),
            ))
        }
    };
    if let Some((event_type, data)) = event {
        change.event(event_type, data);
    }
    for (event_type, data) in
        flag_unrecognised_requirements(change.link(), state, &mut update, source)
    {
        change.event(event_type, data);
    }
    change.update(&update).await
}

/// Longest requirement code kept in an event (an unknown value is shown as its JSON).
const MAX_EVENT_CODE_CHARS: usize = 200;

/// Flags provider values no mapping knows, as an unknown status is flagged: the link is marked
/// for review, and each value not already flagged on the link gets a
/// `provider_requirement_unrecognized` event naming the provider and the value's code. The
/// value itself stays in the link's requirements and shows as `contact_support`.
fn flag_unrecognised_requirements(
    link: &LinkRow,
    state: &ProviderUserState,
    update: &mut LinkUpdate,
    source: Source,
) -> Vec<(&'static str, serde_json::Value)> {
    let now = OffsetDateTime::now_utc();
    let status = update.status.unwrap_or(link.status);
    let requirements = serde_json::Value::Array(state.requirements.clone());
    // What the link will hold: the stored `provider_data` merged with the new facts.
    let mut link_data = link.provider_data.0.clone();
    link_data.extend(state.link_data.clone());
    let after = actions::facts(
        status,
        Some(&state.provider_status),
        &requirements,
        &link_data,
        &[],
        now,
    );
    let unknown = actions::unrecognised_codes(link.provider, &after);
    if unknown.is_empty() {
        return Vec::new();
    }
    update.needs_review = Some(true);
    let before = actions::unrecognised_codes(link.provider, &actions::link_facts(link, &[], now));
    unknown
        .into_iter()
        .filter(|code| !before.contains(code))
        .map(|code| {
            let code: String = code.chars().take(MAX_EVENT_CODE_CHARS).collect();
            (
                "provider_requirement_unrecognized",
                json!({
                    "provider": link.provider,
                    "code": code,
                    "provider_status": state.provider_status,
                    "source": source.as_str(),
                    "flagged_for_review": true,
                }),
            )
        })
        .collect()
}

/// How a submission attempt starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Submission {
    /// An earlier attempt may have created the account without its answer being recorded (a
    /// crash mid-call, or a timeout): the provider's [`AfterUnknownOutcome`] says what to do.
    pub outcome_unknown: bool,
    /// When the first such attempt started, if known (kept on a link flagged for review).
    pub unknown_since: Option<OffsetDateTime>,
    /// The link was written pending by this request a moment ago (a create's inline run): no
    /// need to read it back before calling, and the answer is recorded in one statement that
    /// checks the link is still so (an erasure or a second link in between sends it to the
    /// locked path, see [`FreshChange`]).
    pub fresh_link: bool,
}

/// `last_error.code` of a link whose create reached the provider once without its answer
/// being recorded, then was refused as a duplicate when sent again: the account exists and
/// its id is unknown (kept with the `external_id` and the time of the first attempt).
pub const ACCOUNT_ID_UNKNOWN: &str = "provider_account_id_unknown";
/// `last_error.code` of a link whose account may exist at a provider that cannot be asked.
pub const POSSIBLE_DUPLICATE_ACCOUNT: &str = "possible_duplicate_account";

/// Submits a pending link to its provider and records the answer.
///
/// After an attempt whose outcome is unknown (see [`Submission`]) the connector's
/// [`AfterUnknownOutcome`] decides: KillB and Carbn are searched first (by `externalId`, by
/// listing) and a found account is adopted, never duplicated; Kraken's create is sent again
/// with the same `external_id` (Kraken refuses a second account for it), or, with
/// `on_unknown_outcome = "review"`, the link is flagged for review. A provider that answers
/// 409 to a create is searched the same way when it can be.
pub async fn submit(
    services: &Services,
    job_id: Uuid,
    user_id: Uuid,
    user: &CanonicalUser,
    provider: ProviderId,
    how: Submission,
) -> Result<Attempt, OnboardingError> {
    let Some(connector) = services.providers.connector(provider) else {
        // Disabled after routing: the link waits until the provider is back.
        return Ok(Attempt::Retry(ProviderError::new(
            ProviderErrorKind::Unavailable,
            format!("{} is not configured", provider.as_str()),
        )));
    };
    if !how.fresh_link {
        match links::for_users(&services.pool, &[user_id])
            .await?
            .into_iter()
            .find(|l| l.provider == provider)
        {
            Some(link)
                if link.provider_user_id.is_some()
                    || link.status != LinkStatus::PendingSubmission =>
            {
                return Ok(Attempt::Done)
            }
            Some(_) => {}
            None => return Ok(Attempt::Done), // the link is gone (user erased)
        }
    }
    let request = CreateRequest {
        gateway_user_id: user_id,
        user,
    };
    let log = CallLog::new();
    let after_unknown = how
        .outcome_unknown
        .then(|| connector.after_unknown_outcome());
    let create = || async {
        connector
            .create_user(request, &log)
            .await
            .map(|s| (s, false))
    };
    let mut result = match after_unknown {
        Some(AfterUnknownOutcome::LookFirst) => {
            match connector.find_existing(request, &log).await {
                Ok(Some(state)) => Ok((state, true)),
                Ok(None) => create().await,
                Err(error) => Err(error),
            }
        }
        Some(AfterUnknownOutcome::Review) => Err(ProviderError::new(
            ProviderErrorKind::NotSupported,
            "an earlier attempt may have created the account; the provider is configured to \
             have it checked by a person (on_unknown_outcome = review)",
        )),
        Some(AfterUnknownOutcome::Resend) | None => create().await,
    };
    // A conflict means an account for this user may already exist there: look for it where
    // the provider can be asked (without a lookup the conflict itself is what is recorded).
    if matches!(&result, Err(e) if e.kind == ProviderErrorKind::Conflict) {
        result = match connector.find_existing(request, &log).await {
            Ok(Some(state)) => Ok((state, true)),
            Ok(None) => result,
            Err(error) if error.kind == ProviderErrorKind::NotSupported => result,
            Err(error) => Err(error),
        };
    }
    let review = ReviewFacts {
        external_id: &user.external_id,
        first_attempt_at: how.unknown_since,
        // The resend was refused as a duplicate: the first attempt did create the account.
        earlier_attempt_landed: after_unknown == Some(AfterUnknownOutcome::Resend),
    };
    let calls = call_events(&log);
    if how.fresh_link {
        let mut change = FreshChange::assume(services, user_id, provider);
        change.events.extend(calls.iter().cloned());
        let attempt = record_submission(&mut change, provider, &result, &review).await?;
        // A finished job is marked done with its effect, in the same statement.
        let done = matches!(attempt, Attempt::Done);
        if let Some(row) = change.record(done.then_some(job_id)).await? {
            return Ok(match attempt {
                Attempt::Done => Attempt::Settled(Some(Box::new(row))),
                other => other,
            });
        }
    }
    let Some(mut change) = LockedChange::begin(services, user_id, provider).await? else {
        return Ok(Attempt::Done);
    };
    let conflict = matches!(&result, Err(e) if e.kind == ProviderErrorKind::Conflict);
    if conflict && change.link.provider_user_id.is_some() {
        // Another attempt (one whose lease this job outlived) recorded the account meanwhile:
        // the duplicate the provider refused is that account, nothing is left to review.
        return Ok(Attempt::Done);
    }
    change.events.extend(calls);
    let attempt = record_submission(&mut change, provider, &result, &review).await?;
    if result.is_ok() && change.link.erasure.is_none() {
        // The account exists now: documents that waited for it are queued, in this transaction.
        super::submissions::link_submitted(&mut change.tx, services, user_id, provider).await?;
    }
    if result.is_ok() && change.link.erasure.is_some() {
        // The user was erased while this create was in flight: the new account must go too.
        change.flush_events().await?;
        let link = change.link.clone();
        super::provider_erasure::account_created_after_erasure(&mut change.tx, services, &link)
            .await?;
    }
    // A finished job is marked done with its effect, in the same commit.
    let done = matches!(attempt, Attempt::Done);
    change.commit(done.then_some(job_id)).await?;
    Ok(match attempt {
        Attempt::Done => Attempt::Settled(None),
        other => other,
    })
}

/// What a link flagged for review after a submission keeps so ops can find the account at the
/// provider (identifiers and times only, never PII).
struct ReviewFacts<'a> {
    external_id: &'a str,
    /// When the first attempt whose answer was lost started.
    first_attempt_at: Option<OffsetDateTime>,
    /// A resend after an unknown outcome was refused as a duplicate.
    earlier_attempt_landed: bool,
}

/// What a submission's answer does to its link (collected on `change`, written when it commits).
async fn record_submission(
    change: &mut impl Recording,
    provider: ProviderId,
    result: &Result<(ProviderUserState, bool), ProviderError>,
    review: &ReviewFacts<'_>,
) -> Result<Attempt, OnboardingError> {
    let attempt = match result {
        Ok((state, adopted)) => {
            if *adopted {
                change.event(
                    "provider_account_adopted",
                    json!({ "provider": provider.as_str(), "reason": "created_but_not_recorded" }),
                );
            }
            apply_state(change, state, Source::Api, true).await?;
            Attempt::Done
        }
        Err(error)
            if error.kind == ProviderErrorKind::NotSupported
                || error.kind == ProviderErrorKind::Conflict =>
        {
            let (code, reason) = match error.kind {
                ProviderErrorKind::Conflict if review.earlier_attempt_landed => (
                    ACCOUNT_ID_UNKNOWN,
                    "an earlier create with this external_id reached the provider without its \
                     answer being recorded (a second one is refused as a duplicate): the account \
                     exists and its id is unknown until a webhook names it",
                ),
                ProviderErrorKind::Conflict => (
                    POSSIBLE_DUPLICATE_ACCOUNT,
                    "the provider reports an existing account that could not be matched",
                ),
                _ => (
                    POSSIBLE_DUPLICATE_ACCOUNT,
                    "an earlier attempt may have created the account and the provider offers no \
                     lookup",
                ),
            };
            let first_attempt_at = review
                .first_attempt_at
                .and_then(|at| at.format(&Rfc3339).ok());
            change
                .update(&LinkUpdate {
                    needs_review: Some(true),
                    last_error: Some(Some(json!({
                        "code": code,
                        "message": reason,
                        "external_id": review.external_id,
                        "first_attempt_at": first_attempt_at,
                        "at": now_rfc3339(),
                    }))),
                    ..LinkUpdate::default()
                })
                .await?;
            change.event(
                "link_needs_review",
                json!({
                    "provider": provider.as_str(),
                    "reason": code,
                    "external_id": review.external_id,
                    "first_attempt_at": first_attempt_at,
                }),
            );
            Attempt::NeedsReview(reason.to_owned())
        }
        Err(error) => {
            tracing::warn!(provider = provider.as_str(), kind = ?error.kind, provider_code = ?error.provider_code, "submission failed");
            let mut update = LinkUpdate {
                last_error: Some(Some(error_json(error))),
                ..LinkUpdate::default()
            };
            let retry = error.retryable() || error.kind == ProviderErrorKind::Unauthorized;
            if !retry {
                let current = change.link().status;
                update.status = Some(LinkStatus::SubmissionFailed);
                change.event(
                    "status_changed",
                    json!({
                        "provider": provider.as_str(),
                        "from": current.as_str(),
                        "to": LinkStatus::SubmissionFailed.as_str(),
                        "source": Source::Api.as_str(),
                        "error_code": error.code(),
                    }),
                );
            }
            change.update(&update).await?;
            if retry {
                Attempt::Retry(error.clone())
            } else {
                Attempt::Done
            }
        }
    };
    Ok(attempt)
}

/// Adopts the account a webhook names when it is the one a flagged link lost its answer for
/// ([`ACCOUNT_ID_UNKNOWN`]): the provider is asked whose account it is (its `external_id`), and
/// if the gateway user with that external id has a link still waiting for its account, the link
/// gets the account and its state (a `provider_account_adopted` event), its review flag is
/// lifted and its failed submission job marked done. Returns the user adopted for, `None` when
/// no link waits for this account (nothing is written then).
pub async fn adopt_revealed_account(
    services: &Services,
    provider: ProviderId,
    provider_user_id: &str,
) -> Result<Option<Uuid>, OnboardingError> {
    if !links::any_awaiting_account(&services.pool, provider, ACCOUNT_ID_UNKNOWN).await? {
        return Ok(None);
    }
    let Some(connector) = services.providers.connector(provider) else {
        return Ok(None);
    };
    let log = CallLog::new();
    let no_data = serde_json::Map::new();
    let link_ref = crate::providers::connector::LinkRef {
        provider_user_id,
        link_data: &no_data,
    };
    let state = match connector.get_user(link_ref, &log).await {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(provider = provider.as_str(), kind = ?error.kind,
                "could not ask the provider whose account a webhook names");
            return Ok(None);
        }
    };
    let Some(external_id) = state.external_id.as_deref() else {
        return Ok(None);
    };
    let Some(user_id) = users::id_by_external_id(&services.pool, external_id).await? else {
        return Ok(None);
    };
    let Some(mut change) = LockedChange::begin(services, user_id, provider).await? else {
        return Ok(None);
    };
    let waiting = change.link.provider_user_id.is_none()
        && change.link.erasure.is_none()
        && change
            .link
            .last_error
            .as_ref()
            .is_some_and(|e| e.0["code"] == ACCOUNT_ID_UNKNOWN);
    if !waiting {
        return Ok(None); // the transaction rolls back unused
    }
    change.calls(&log);
    change.event(
        "provider_account_adopted",
        json!({ "provider": provider.as_str(), "reason": "revealed_by_webhook" }),
    );
    apply_state(&mut change, &state, Source::Webhook, true).await?;
    if state.status.is_some() {
        // The account is found: nothing is left to review (an unknown status keeps its flag).
        change
            .update(&LinkUpdate {
                needs_review: Some(false),
                ..LinkUpdate::default()
            })
            .await?;
    }
    super::submissions::link_submitted(&mut change.tx, services, user_id, provider).await?;
    // The account holds the profile as the first attempt sent it; a patch made while the link
    // waited found no account to go to (its update job ended there). Send what the patches
    // changed now, after this adoption in the link's queue (found by the chaos run).
    let patched: Vec<String> = events::updated_fields(&mut change.tx, user_id)
        .await?
        .into_iter()
        .filter(|path| connector.field_policy(path) == FieldPolicy::Send)
        .collect();
    if !patched.is_empty() {
        super::queue::enqueue_link_job(
            &mut change.tx,
            crate::store::jobs::JobKind::UpdateLink,
            &super::queue::LinkJob {
                user_id,
                provider,
                fields: patched,
            },
            services.workers.max_attempts,
        )
        .await?;
    }
    let key = super::queue::queue_key(user_id, provider);
    let failed_job = crate::store::jobs::failed_submission(&mut *change.tx, &key).await?;
    change.commit(failed_job).await?;
    Ok(Some(user_id))
}

/// How many stored, unmatched webhooks one [`adopt_from_unmatched_webhooks`] call tries.
const UNMATCHED_WEBHOOKS_PER_CALL: i64 = 100;

/// [`adopt_revealed_account`] for the webhooks that came too early: a provider may name the
/// account (e.g. Kraken's `user.verified`) while the first attempt's answer is still lost and
/// before the resend flags the link, so the delivery was stored as `unknown_user`. Once a link
/// waits for its account, those stored deliveries are tried again (newest first, bounded); each
/// that finds its link is marked applied. Runs when a link is flagged and on each
/// reconciliation pass. Returns how many accounts were adopted.
pub async fn adopt_from_unmatched_webhooks(
    services: &Services,
    provider: ProviderId,
) -> Result<usize, OnboardingError> {
    let pool = &services.pool;
    if !links::any_awaiting_account(pool, provider, ACCOUNT_ID_UNKNOWN).await? {
        return Ok(0);
    }
    let mut adopted = 0;
    let unmatched = crate::store::webhooks::unmatched_accounts(
        pool,
        provider.as_str(),
        UNMATCHED_WEBHOOKS_PER_CALL,
    )
    .await?;
    for (event_id, provider_user_id) in unmatched {
        if let Some(user_id) = adopt_revealed_account(services, provider, &provider_user_id).await?
        {
            crate::store::webhooks::mark(pool, event_id, "applied", true, Some(user_id), None)
                .await?;
            adopted += 1;
            if !links::any_awaiting_account(pool, provider, ACCOUNT_ID_UNKNOWN).await? {
                break;
            }
        }
    }
    Ok(adopted)
}

/// Keeps a failed call's error on the link (its status is left as it is).
async fn record_error(
    change: &mut LockedChange,
    error: &ProviderError,
) -> Result<(), OnboardingError> {
    change
        .update(&LinkUpdate {
            last_error: Some(Some(error_json(error))),
            ..LinkUpdate::default()
        })
        .await
}

/// Reads a submitted link's status from its provider and records it.
pub async fn sync(
    services: &Services,
    link: &LinkRow,
    source: Source,
) -> Result<(), OnboardingError> {
    sync_outcome(services, link, source).await.map(|_| ())
}

/// What one sync found (for reconciliation's summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Not addressable (no provider id, provider not configured) or the link is gone.
    Skipped,
    /// The provider answered; its state was recorded. `from` and `to` are our status before and
    /// after; `provider_says` what the provider's answer maps to (`None`: an unknown raw status).
    Applied {
        from: String,
        to: String,
        provider_says: Option<String>,
    },
    /// The provider does not know the submitted account: the link is flagged for review with
    /// `last_error.code = missing_at_provider`.
    Missing,
    /// The call failed; the error is kept on the link (`code` as in `last_error.code`).
    Failed { code: &'static str },
}

/// `last_error.code` of a link whose account the provider no longer knows.
pub const MISSING_AT_PROVIDER: &str = "missing_at_provider";

/// [`sync`], telling what it found.
pub async fn sync_outcome(
    services: &Services,
    link: &LinkRow,
    source: Source,
) -> Result<SyncOutcome, OnboardingError> {
    let Some((connector, link_ref)) = addressable(services, link) else {
        return Ok(SyncOutcome::Skipped);
    };
    let log = CallLog::new();
    let result = connector.get_user(link_ref, &log).await;
    let Some(mut change) = LockedChange::begin(services, link.user_id, link.provider).await? else {
        return Ok(SyncOutcome::Skipped);
    };
    change.calls(&log);
    let before = change.link.clone();
    let was_missing = before
        .last_error
        .as_ref()
        .and_then(|e| e.0.get("code"))
        .and_then(|c| c.as_str())
        == Some(MISSING_AT_PROVIDER);
    let outcome = match result {
        Ok(state) => {
            apply_state(&mut change, &state, source, false).await?;
            if was_missing {
                // The account is back: lift the flag (an unknown status keeps its own).
                change
                    .update(&LinkUpdate {
                        needs_review: Some(state.status.is_none()),
                        ..LinkUpdate::default()
                    })
                    .await?;
            }
            let now = crate::store::reconciliation::link_state(
                &mut *change.tx,
                link.user_id,
                link.provider,
            )
            .await?;
            let (to, provider_says) =
                now.unwrap_or_else(|| (before.status.as_str().to_owned(), None));
            SyncOutcome::Applied {
                from: before.status.as_str().to_owned(),
                to,
                provider_says,
            }
        }
        Err(error) if error.kind == ProviderErrorKind::NotFound => {
            mark_missing(&mut change, &error, source, was_missing).await?;
            SyncOutcome::Missing
        }
        Err(error) => {
            record_error(&mut change, &error).await?;
            SyncOutcome::Failed { code: error.code() }
        }
    };
    change.commit(None).await?;
    Ok(outcome)
}

/// A submitted link whose account the provider does not know: flagged for review (its status is
/// left as it is), with one `link_missing_at_provider` event when first noticed.
async fn mark_missing(
    change: &mut LockedChange,
    error: &ProviderError,
    source: Source,
    already_marked: bool,
) -> Result<(), OnboardingError> {
    tracing::warn!(
        provider = change.link.provider.as_str(),
        provider_code = ?error.provider_code,
        "a submitted account is missing at its provider"
    );
    let data = json!({
        "provider": change.link.provider,
        "status": change.link.status,
        "source": source.as_str(),
        "http_status": error.http_status,
        "flagged_for_review": true,
    });
    change
        .update(&LinkUpdate {
            needs_review: Some(true),
            last_error: Some(Some(json!({
                "code": MISSING_AT_PROVIDER,
                "message": "the provider does not know this account",
                "at": now_rfc3339(),
            }))),
            ..LinkUpdate::default()
        })
        .await?;
    if !already_marked {
        change.event("link_missing_at_provider", data);
    }
    Ok(())
}

/// Sends the changed fields a provider takes to one submitted link.
pub async fn push_update(
    services: &Services,
    link: &LinkRow,
    user: &CanonicalUser,
    fields: &[String],
) -> Result<Attempt, OnboardingError> {
    let Some((connector, link_ref)) = addressable(services, link) else {
        return Ok(Attempt::Done);
    };
    let log = CallLog::new();
    let result = connector.update_user(link_ref, user, fields, &log).await;
    let Some(mut change) = LockedChange::begin(services, link.user_id, link.provider).await? else {
        return Ok(Attempt::Done);
    };
    change.calls(&log);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    change.event(
        "provider_update",
        json!({ "provider": link.provider, "fields": fields, "outcome": outcome }),
    );
    let attempt = match result {
        Ok(Some(state)) => {
            apply_state(&mut change, &state, Source::Api, false).await?;
            Attempt::Done
        }
        Ok(None) => {
            change
                .update(&LinkUpdate {
                    last_error: Some(None),
                    ..LinkUpdate::default()
                })
                .await?;
            Attempt::Done
        }
        Err(error) => {
            record_error(&mut change, &error).await?;
            if error.retryable() || error.kind == ProviderErrorKind::Unauthorized {
                Attempt::Retry(error)
            } else {
                // The provider refused the change: kept on the link for ops, not retried.
                Attempt::Done
            }
        }
    };
    change.commit(None).await?;
    Ok(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LinkStatus::*;

    #[test]
    fn final_decisions_stick_and_submitted_links_never_fall_back() {
        assert!(transition_allowed(PendingSubmission, UnderReview));
        assert!(transition_allowed(UnderReview, Approved));
        assert!(transition_allowed(Approved, Suspended));
        assert!(transition_allowed(Suspended, Approved));
        assert!(!transition_allowed(Rejected, Approved));
        assert!(!transition_allowed(Closed, UnderReview));
        assert!(!transition_allowed(Approved, PendingSubmission));
        assert!(transition_allowed(SubmissionFailed, PendingSubmission));
        assert!(!transition_allowed(Approved, Approved));
    }
}

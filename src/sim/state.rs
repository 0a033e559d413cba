//! Shared simulator state and its data: users per provider and their status transitions (each
//! provider's own rules through `SimProvider`), faults, recorded requests and webhook
//! deliveries. The other simulator files import this one, never the other way round.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::{simulator, ProviderStates, SimConfig, WebhookTargets};
use crate::domain::provider::ProviderId;

/// The simulator's provider-neutral status; each provider renders it in its own vocabulary
/// (see the table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimStatus {
    /// The provider's realistic initial state.
    Pending,
    /// Under (manual) review.
    UnderReview,
    /// More information needed from the user.
    Incomplete,
    /// Verified.
    Approved,
    /// KYC failed.
    Rejected,
    /// Temporarily disabled.
    Suspended,
    /// Closed / offboarded / soft-deleted.
    Closed,
}

impl SimStatus {
    /// Parses sim names and provider-native values (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pending" | "initial" => SimStatus::Pending,
            "under_review" | "review" | "wait" => SimStatus::UnderReview,
            "incomplete" | "action_required" | "provide_details" => SimStatus::Incomplete,
            "approved" | "approve" | "active" | "verified" | "ok" => SimStatus::Approved,
            "rejected" | "reject" => SimStatus::Rejected,
            "suspended" | "suspend" | "paused" | "disabled" => SimStatus::Suspended,
            "closed" | "close" | "offboarded" | "deleted" => SimStatus::Closed,
            _ => return None,
        })
    }

    /// The magic tag in an email's local part (`jane+approve@…`), if any.
    pub fn from_email_tag(email: &str) -> Option<Self> {
        let local = email.split('@').next()?;
        local.split('+').skip(1).find_map(|tag| {
            Some(match tag.to_ascii_lowercase().as_str() {
                "approve" => SimStatus::Approved,
                "reject" => SimStatus::Rejected,
                "review" => SimStatus::UnderReview,
                "incomplete" => SimStatus::Incomplete,
                "suspend" => SimStatus::Suspended,
                _ => return None,
            })
        })
    }
}

/// One simulated user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimUser {
    /// Provider user id (IIBAN or UUID).
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// Which provider.
    pub provider: ProviderId,
    /// Status.
    pub status: SimStatus,
    /// Raw provider status that overrides the rendering (set by the control endpoint).
    pub provider_status: Option<Value>,
    /// Whether the provider reports the user as active (a provider may close by clearing it).
    pub active: bool,
    /// The stored profile in the provider's own request shape (merged on update).
    pub profile: Value,
    /// External id, where the provider has one.
    pub external_id: Option<String>,
    /// The provider's user type, where it has several (e.g. `PERSON`/`COMPANY`).
    pub user_type: Option<String>,
    /// What the provider keeps about the user's verification, in its own shape (outstanding
    /// actions, documents received, a hosted step done, a review outcome); `Null` until then.
    pub verification: Value,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What happened to a stored user (see `SimProvider::changed`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// It was created.
    Created,
    /// Its status (or raw provider status) was set; `before` is the user before.
    Status {
        /// The user before the change.
        before: &'a SimUser,
    },
    /// Its profile was updated and its status did not move.
    Updated,
}

impl Change<'_> {
    /// For a provider that notifies status changes only: whether this change of `user` warrants
    /// a status webhook (created in any status but the initial one, the status moved, or a
    /// raw provider status was set; never a profile update).
    pub(crate) fn notifies_status(&self, user: &SimUser) -> bool {
        match self {
            Change::Created => user.status != SimStatus::Pending,
            Change::Status { before } => {
                before.status != user.status || user.provider_status.is_some()
            }
            Change::Updated => false,
        }
    }
}

/// A fault to inject into one provider's matching requests (`POST /_sim/faults`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Which provider's requests.
    pub provider: ProviderId,
    /// Only requests whose path starts with this (raw request-target), if set.
    #[serde(default)]
    pub path: Option<String>,
    /// Only this HTTP method, if set.
    #[serde(default)]
    pub method: Option<String>,
    /// Delay before anything else happens.
    #[serde(default)]
    pub latency_ms: u64,
    /// Probability (0..=1) that `status` is returned for a matched request.
    #[serde(default = "one")]
    pub error_rate: f64,
    /// Error status to answer with (e.g. 429, 500, 503), in the provider's error envelope.
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` seconds sent with the error.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Hang without answering (the client times out).
    #[serde(default)]
    pub timeout: bool,
    /// Close the TCP connection without an answer.
    #[serde(default)]
    pub drop_connection: bool,
    /// Apply the fault after the provider has acted on the request (the user is created, the
    /// change made) instead of before: the effect happened but its answer is lost, as when a
    /// connection drops or times out after the provider did the work.
    #[serde(default)]
    pub after_handling: bool,
    /// How many matching requests this fault applies to (unset: until cleared).
    #[serde(default)]
    pub count: Option<u32>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// How many requests it has hit.
    pub hits: u32,
}

/// One recorded provider request (`GET /_sim/requests`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RecordedRequest {
    /// Order of arrival.
    pub seq: u64,
    /// Owning provider.
    pub provider: Option<ProviderId>,
    /// HTTP method.
    pub method: String,
    /// Raw request-target (path and query exactly as received).
    pub path: String,
    /// Headers, lower-case names (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// Raw body (lossy UTF-8).
    pub body: String,
    /// Arrival time.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// One attempt's outcome.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliveryAttempt {
    /// HTTP status answered, if any.
    pub status: Option<u16>,
    /// Transport error, if any.
    pub error: Option<String>,
}

/// A webhook the simulator sent (or would have sent: `url` is `None` without a target).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WebhookDelivery {
    /// Sequence number.
    pub id: u64,
    /// Which provider's scheme.
    pub provider: ProviderId,
    /// The provider's event name (its event type, or `<event>/<action>`).
    pub event: String,
    /// The provider user id concerned.
    pub user_id: String,
    /// Target URL.
    pub url: Option<String>,
    /// Headers of the last attempt.
    pub headers: BTreeMap<String, String>,
    /// Body of the last attempt.
    pub body: String,
    /// Attempts made.
    pub attempts: Vec<DeliveryAttempt>,
    /// Whether a 2xx was received.
    pub delivered: bool,
}

#[derive(Default)]
pub(crate) struct Store {
    users: [HashMap<String, SimUser>; ProviderId::ALL.len()],
    pub faults: Vec<ActiveFault>,
    pub requests: Vec<RecordedRequest>,
    pub webhooks: Vec<WebhookDelivery>,
    pub webhook_targets: WebhookTargets,
    /// Candidate user ids by (provider, `ext:<external id>` or `email:<email>`), so duplicate
    /// checks do not scan every user under the lock (a load run creates tens of thousands).
    /// Append-only: callers re-check the live user, so an entry left by a changed email is
    /// harmless; every insert and every email change adds the current values.
    index: HashMap<(usize, String), Vec<String>>,
}

impl Store {
    pub fn users(&self, provider: ProviderId) -> &HashMap<String, SimUser> {
        &self.users[provider.index()]
    }

    pub fn users_mut(&mut self, provider: ProviderId) -> &mut HashMap<String, SimUser> {
        &mut self.users[provider.index()]
    }

    /// Records `user`'s current external id and email for [`Store::candidates`].
    pub fn index_user(&mut self, user: &SimUser) {
        let mut keys = Vec::new();
        if let Some(ext) = &user.external_id {
            keys.push(format!("ext:{ext}"));
        }
        for field in ["email", "email_address"] {
            if let Some(email) = user.profile.get(field).and_then(Value::as_str) {
                keys.push(format!("email:{email}"));
            }
        }
        for key in keys {
            let ids = self.index.entry((user.provider.index(), key)).or_default();
            if !ids.iter().any(|id| id == &user.id) {
                ids.push(user.id.clone());
            }
        }
    }

    /// The users of `provider` that have (or once had) this `ext:`/`email:` key; a superset of
    /// those that have it now, so callers check the live value.
    pub fn candidates<'a>(
        &'a self,
        provider: ProviderId,
        key: &str,
    ) -> impl Iterator<Item = &'a SimUser> + 'a {
        let users = self.users(provider);
        self.index
            .get(&(provider.index(), key.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(move |id| users.get(id))
    }

    pub fn sorted_users(&self, provider: ProviderId) -> Vec<SimUser> {
        let mut users: Vec<SimUser> = self.users(provider).values().cloned().collect();
        users.sort_by_key(|u| u.seq);
        users
    }
}

/// Locks `mutex`, also after a panic elsewhere (the simulator's data stays usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything the simulator keeps; shared by all workers.
pub struct SimState {
    pub(crate) config: SimConfig,
    pub(crate) store: Mutex<Store>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) http: reqwest::Client,
    /// What each provider keeps for itself.
    pub(crate) providers: ProviderStates,
    seq: AtomicU64,
}

impl SimState {
    pub(crate) fn new(config: SimConfig, runtime: tokio::runtime::Handle) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let providers = ProviderStates::new(&config)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| invalid(format!("webhook HTTP client: {e}")))?;
        let store = Store {
            webhook_targets: config.webhook_targets.clone(),
            ..Store::default()
        };
        Ok(Self {
            config,
            store: Mutex::new(store),
            runtime,
            http,
            providers,
            seq: AtomicU64::new(0),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The simulator's own address as a browser reaches it (`SimConfig::public_base_url`).
    pub fn public_base_url(&self) -> Option<&str> {
        self.config.public_base_url.as_deref()
    }

    /// `path` (starting with `/`) on the simulator's own public address, if it has one.
    pub(crate) fn public_url(&self, path: &str) -> Option<String> {
        let base = self.config.public_base_url.as_deref()?;
        Some(format!("{}{path}", base.trim_end_matches('/')))
    }

    /// The users of one provider, in creation order.
    pub fn users(&self, provider: ProviderId) -> Vec<SimUser> {
        self.lock().sorted_users(provider)
    }

    /// One user.
    pub fn user(&self, provider: ProviderId, id: &str) -> Option<SimUser> {
        self.lock().users(provider).get(id).cloned()
    }

    /// Requests recorded so far (all providers, or one).
    pub fn requests(&self, provider: Option<ProviderId>) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| provider.is_none() || r.provider == provider)
            .cloned()
            .collect()
    }

    /// Webhook deliveries made so far.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().webhooks.clone()
    }

    /// Changes where webhooks go.
    pub fn set_webhook_targets(&self, targets: WebhookTargets) {
        self.lock().webhook_targets = targets;
    }

    /// Inserts a freshly created user, emits the create-time webhook and schedules a review.
    pub(crate) fn insert_user(self: &Arc<Self>, user: SimUser) {
        match self.insert_user_unless(|_| Ok::<_, std::convert::Infallible>(user)) {
            Ok(_) => {}
            Err(never) => match never {},
        }
    }

    /// [`Self::insert_user`] for a create that must refuse duplicates: `build` checks the store
    /// and makes the user under the same lock the insert takes, so two concurrent creates with
    /// one external id cannot both pass the check. `Err` (the refusal) inserts nothing.
    pub(crate) fn insert_user_unless<E>(
        self: &Arc<Self>,
        build: impl FnOnce(&Store) -> Result<SimUser, E>,
    ) -> Result<SimUser, E> {
        let user = {
            let mut store = self.lock();
            let user = build(&store)?;
            store.index_user(&user);
            store
                .users_mut(user.provider)
                .insert(user.id.clone(), user.clone());
            user
        };
        let (provider, status, id) = (user.provider, user.status, user.id.clone());
        simulator(provider).changed(self, Change::Created, &user);
        if status == SimStatus::UnderReview {
            self.schedule_approval(provider, &id);
        }
        Ok(user)
    }

    /// Moves a user to `status` (and/or a raw provider status) and emits the webhook.
    pub fn set_status(
        self: &Arc<Self>,
        provider: ProviderId,
        id: &str,
        status: Option<SimStatus>,
        provider_status: Option<Value>,
        emit: bool,
    ) -> Option<SimUser> {
        self.update_user(provider, id, emit, |user| {
            if let Some(status) = status {
                simulator(provider).apply_status(user, status);
            }
            user.provider_status = provider_status;
        })
    }

    /// Changes a stored user with `change` (its status, or what the provider keeps of its
    /// verification) under the lock, then, with `emit`, sends the webhook the change warrants
    /// and, when the user has just gone under review, schedules the end of the review.
    pub(crate) fn update_user(
        self: &Arc<Self>,
        provider: ProviderId,
        id: &str,
        emit: bool,
        change: impl FnOnce(&mut SimUser),
    ) -> Option<SimUser> {
        let (before, after) = {
            let mut store = self.lock();
            let user = store.users_mut(provider).get_mut(id)?;
            let before = user.clone();
            change(user);
            user.updated_at = OffsetDateTime::now_utc();
            (before, user.clone())
        };
        if emit {
            simulator(provider).changed(self, Change::Status { before: &before }, &after);
        }
        if after.status == SimStatus::UnderReview && before.status != SimStatus::UnderReview {
            self.schedule_approval(provider, id);
        }
        Some(after)
    }

    /// After an update: an `incomplete` user goes to review (then approval).
    pub(crate) fn after_update(self: &Arc<Self>, provider: ProviderId, id: &str, reverify: bool) {
        let Some(user) = self.user(provider, id) else {
            return;
        };
        let to_review = user.status == SimStatus::Incomplete
            || (reverify && matches!(user.status, SimStatus::Approved | SimStatus::Pending));
        if to_review {
            self.set_status(provider, id, Some(SimStatus::UnderReview), None, true);
        } else {
            simulator(provider).changed(self, Change::Updated, &user);
        }
    }

    /// Runs `then` on the runtime once the review delay (`SimConfig::review_delay`) has passed.
    pub(crate) fn after_review_delay(
        self: &Arc<Self>,
        then: impl FnOnce(&Arc<SimState>) + Send + 'static,
    ) {
        let state = Arc::clone(self);
        let delay = self.config.review_delay;
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            then(&state);
        });
    }

    /// After the review delay, a user still under review gets the status its provider's review
    /// ends in (`SimProvider::reviewed`: approval unless an outcome was recorded).
    fn schedule_approval(self: &Arc<Self>, provider: ProviderId, id: &str) {
        let id = id.to_owned();
        self.after_review_delay(move |state| {
            // An account closed meanwhile stays closed: KillB closes by clearing `active` and
            // keeps the status, so the status alone would approve (and reopen) a deleted user.
            let outcome = state
                .user(provider, &id)
                .filter(|u| u.status == SimStatus::UnderReview && u.active)
                .map(|u| simulator(provider).reviewed(&u));
            if let Some(outcome) = outcome {
                state.set_status(provider, &id, Some(outcome), None, true);
            }
        });
    }
}

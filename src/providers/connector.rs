//! The `Connector` abstraction: one implementation per provider, each a stateless translator
//! between the canonical user and that provider's API. Connectors never touch the database;
//! the use-cases in `onboarding/` persist what they return.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::ProviderError;
use crate::domain::provider::ProviderId;
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;
use crate::domain::verification::{DocumentContentType, DocumentType, VerificationAttestation};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider says about one user.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderUserState {
    /// The provider's id for the user (Kraken IIBAN, KillB/Carbn UUID).
    pub provider_user_id: String,
    /// The provider's raw status value, e.g. `ok`, `PENDING`, `under_review`.
    pub provider_status: String,
    /// The canonical status; `None` when the raw status is unknown to the mapping (the link
    /// then keeps its last status, stores the raw value and the event is flagged for review).
    pub status: Option<LinkStatus>,
    /// Outstanding requirements in the provider's own vocabulary, as received.
    pub requirements: Vec<Value>,
    /// Provider-specific facts to keep with the link (e.g. Carbn's consent id).
    pub link_data: Map<String, Value>,
    /// When the provider stamped this state, if it says.
    pub observed_at: Option<OffsetDateTime>,
}

/// The parts of a stored link a connector needs to address the provider's user.
#[derive(Debug, Clone, Copy)]
pub struct LinkRef<'a> {
    pub provider_user_id: &'a str,
    pub link_data: &'a Map<String, Value>,
}

/// What a create needs: the user, plus the gateway's own id (some providers take a reference).
#[derive(Debug, Clone, Copy)]
pub struct CreateRequest<'a> {
    pub gateway_user_id: Uuid,
    pub user: &'a CanonicalUser,
}

/// How a provider treats a change to one canonical field (a JSON path from
/// `domain::merge_patch::changed_paths`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldPolicy {
    /// Sent in the provider's update call.
    Send,
    /// The provider has no such field: the change stays in the gateway only.
    Ignore,
    /// The provider cannot change it after creation: the PATCH is refused
    /// (`422 field_not_updatable`) before anything changes.
    Refuse,
}

/// One HTTP exchange with a provider, recorded for the audit trail and metrics (never PII).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderCall {
    pub provider: ProviderId,
    /// `create_user`, `get_user`, `update_user`, `login`, `accept_terms`, …
    pub operation: &'static str,
    /// HTTP status, or `None` when no response arrived (timeout, connection failure).
    pub http_status: Option<u16>,
    pub latency_ms: f64,
    /// `ok`, `rejected`, `unavailable`, `rate_limited`, `unauthorized`, …
    pub outcome: &'static str,
}

/// Collects the provider calls one use-case step makes (a create may log in first, or accept
/// terms first), so each becomes its own `provider_call` event.
#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<Vec<ProviderCall>>,
}

impl CallLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, call: ProviderCall) {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(call);
    }

    pub fn take(&self) -> Vec<ProviderCall> {
        std::mem::take(
            &mut *self
                .calls
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// One file of a document, opened from the store for the call.
#[derive(Clone, Copy)]
pub struct DocumentFile<'a> {
    pub bytes: &'a [u8],
    pub content_type: DocumentContentType,
    /// A file name to send (`front.jpg`): never the caller's own, which may carry PII.
    pub file_name: &'a str,
}

impl std::fmt::Debug for DocumentFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentFile")
            .field("content_type", &self.content_type)
            .field("size", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A document to send to a provider: one call with both sides of a two-sided document.
#[derive(Debug, Clone, Copy)]
pub struct DocumentUpload<'a> {
    pub user: &'a CanonicalUser,
    pub document_type: DocumentType,
    pub front: DocumentFile<'a>,
    pub back: Option<DocumentFile<'a>>,
    /// Who already verified the person, when the caller said.
    pub verification: Option<&'a VerificationAttestation>,
}

/// The provider's answer to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedDocument {
    /// The provider's id for the submission, when it gives one (Kraken `verification_id`).
    pub provider_document_id: Option<String>,
}

/// What a hosted verification session needs.
#[derive(Debug, Clone, Copy)]
pub struct SessionRequest<'a> {
    pub user: &'a CanonicalUser,
    /// Where the provider sends the person afterwards, when the caller says.
    pub redirect_url: Option<&'a str>,
}

/// A provider's hosted verification, ready for the person to open.
#[derive(Clone, PartialEq, Eq)]
pub struct HostedSession {
    /// Carries a session token: PII-grade, never logged.
    pub url: String,
    pub expires_at: Option<OffsetDateTime>,
    /// The provider's id of the user the session is for, when its answer names one (it should
    /// be the link's; a different one is kept off the link and flagged for review).
    pub provider_user_id: Option<String>,
}

impl std::fmt::Debug for HostedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedSession")
            .field("expires_at", &self.expires_at)
            .field("provider_user_id", &self.provider_user_id)
            .finish_non_exhaustive()
    }
}

/// Whether a stored hosted session may be handed out again without asking the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionReuse {
    /// Each call opens a new session (an application at the provider): a stored one is reused
    /// while it has not expired (or, without an expiry, within the configured window).
    WhileValid,
    /// The provider keeps one current link per user that may change at any time: it is read
    /// again for every request, and counts as reused when it is the one handed out before.
    AskEachTime,
}

/// What a submission does after a create that was sent but not answered (a timeout, a
/// connection lost mid-exchange, a worker that died mid-call): the account may exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUnknownOutcome {
    /// Search the provider for the account and adopt it if found, else create (KillB by
    /// `externalId`, Carbn by listing).
    LookFirst,
    /// Send the create again with the same external id: the provider refuses a second account
    /// for it, so the resend either creates the account (the first never landed) or is
    /// refused as a duplicate (it did; the link is flagged for review). Kraken's default.
    Resend,
    /// Flag the link for a person to check before anything is sent again.
    Review,
}

/// A provider integration. Implementations live in `providers/<name>/mod.rs`, with the wire
/// types and conversions in `transformers.rs`.
pub trait Connector: Send + Sync + 'static {
    fn id(&self) -> ProviderId;

    /// How this provider treats a change to the canonical field at `path` (e.g. `email`,
    /// `address.city`, `tax_ids`, `metadata.tier`).
    fn field_policy(&self, path: &str) -> FieldPolicy;

    /// Creates the user at the provider and returns its state there.
    fn create_user<'a>(
        &'a self,
        request: CreateRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>>;

    /// Reads the user's current state at the provider.
    fn get_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>>;

    /// What a submission does after a create whose outcome is unknown (sent, but its answer
    /// lost). The default looks first ([`Connector::find_existing`]), which for a provider
    /// without a lookup flags the link for review.
    fn after_unknown_outcome(&self) -> AfterUnknownOutcome {
        AfterUnknownOutcome::LookFirst
    }

    /// Looks for the account a create may have made without its answer being recorded (a
    /// crash, or a timeout after sending). `Ok(None)` means no such account exists and a create
    /// is safe; `Err(NotSupported)` means the provider offers no lookup, so the link must be
    /// reviewed by a person rather than risk a second account.
    fn find_existing<'a>(
        &'a self,
        request: CreateRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<Option<ProviderUserState>, ProviderError>> {
        let _ = (request, log);
        Box::pin(async move {
            Err(ProviderError::new(
                super::error::ProviderErrorKind::NotSupported,
                format!(
                    "{} offers no lookup of existing accounts",
                    self.id().as_str()
                ),
            ))
        })
    }

    /// Whether [`Connector::delete_user`] exists at this provider (erasure asks it, or lists the
    /// account for manual follow-up).
    fn supports_deletion(&self) -> bool {
        false
    }

    /// Deletes (or deactivates) the user's account at the provider, for erasure.
    fn delete_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        let _ = (link, log);
        Box::pin(async move {
            Err(ProviderError::new(
                super::error::ProviderErrorKind::NotSupported,
                format!("{} offers no deletion of users", self.id().as_str()),
            ))
        })
    }

    /// Sends a document (both sides of a two-sided one in one call) to the provider.
    fn submit_document<'a>(
        &'a self,
        link: LinkRef<'a>,
        upload: DocumentUpload<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<SubmittedDocument, ProviderError>> {
        let _ = (link, upload, log);
        Box::pin(async move {
            Err(ProviderError::new(
                super::error::ProviderErrorKind::NotSupported,
                format!("{} takes no document uploads", self.id().as_str()),
            ))
        })
    }

    /// How [`Connector::create_verification_session`]'s sessions may be reused.
    fn session_reuse(&self) -> SessionReuse {
        SessionReuse::WhileValid
    }

    /// Whether a session needs the caller's `redirect_url` (the provider requires one and no
    /// default is configured): checked before anything is sent.
    fn session_needs_redirect_url(&self) -> bool {
        false
    }

    /// Opens the provider's hosted verification for the user.
    fn create_verification_session<'a>(
        &'a self,
        link: LinkRef<'a>,
        request: SessionRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<HostedSession, ProviderError>> {
        let _ = (link, request, log);
        Box::pin(async move {
            Err(ProviderError::new(
                super::error::ProviderErrorKind::NotSupported,
                format!("{} has no hosted verification", self.id().as_str()),
            ))
        })
    }

    /// Sends the changed fields (`changed`, JSON paths whose policy is `Send`) of `user` to the
    /// provider. Returns the provider's state when its answer carries one.
    fn update_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        user: &'a CanonicalUser,
        changed: &'a [String],
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<Option<ProviderUserState>, ProviderError>>;
}

//! The use-cases: the only place that combines the store with providers, and where
//! transactions begin and end.

//! Modules import one way, from the use-cases down to the leaves:
//! `sessions` → `users`, `erasure`, `documents` → `jobs` (runs jobs inline) → `links`,
//! `notify`, `provider_erasure` (what each kind of job does) → `submissions` (documents at
//! providers; the link's submission queues those waiting for it) → `attempt`, `calls`, `queue`,
//! `actions`, `operator` (leaves); `reconcile` and `webhooks` use `links`. None of them imports a module
//! above it. `overview` reads counts through `reconcile` and the store.

pub mod actions;
pub mod attempt;
pub mod calls;
pub mod documents;
pub mod erasure;
pub mod jobs;
pub mod links;
pub mod notify;
pub mod operator;
pub mod overview;
pub mod provider_erasure;
pub mod queue;
pub mod reconcile;
pub mod sessions;
pub mod submissions;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::FieldError;
use crate::providers::registry::ProviderRegistry;
use crate::settings::{DocumentSettings, RoutingSettings, SubscriberSettings, WorkerSettings};
use crate::store::StoreError;

/// What the use-cases work with.
#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub providers: Arc<ProviderRegistry>,
    pub routing: Arc<RoutingSettings>,
    pub workers: Arc<WorkerSettings>,
    /// This instance's name in job claims.
    pub instance: Arc<str>,
    /// Notification subscribers (`[[notifications.subscribers]]`).
    pub subscribers: Arc<Vec<SubscriberSettings>>,
    /// Outbound client for notifications.
    pub http: reqwest::Client,
    /// Seals and opens personal data at rest.
    pub keyring: Arc<crate::crypto::Keyring>,
    /// `[documents]`: upload limits and how long a front waits for its back.
    pub documents: Arc<DocumentSettings>,
    /// Document submissions in flight at once (`documents.max_concurrent_sends`).
    pub document_sends: Arc<tokio::sync::Semaphore>,
}

/// Why a use-case did not do what was asked. The HTTP layer turns each into a problem document.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error("user not found")]
    NotFound,
    #[error("the user's personal data was erased")]
    Erased {
        erased_at: Option<time::OffsetDateTime>,
    },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("a user with this external_id already exists")]
    UserAlreadyExists { existing_user_id: Option<Uuid> },
    #[error("the user lacks fields a provider requires")]
    ProviderRequirementsUnmet(Vec<FieldError>),
    #[error("a linked provider cannot take this change")]
    FieldNotUpdatable(Vec<FieldError>),
    #[error("the user is already linked to this provider")]
    AlreadyLinked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OnboardingError {
    fn from(error: sqlx::Error) -> Self {
        OnboardingError::Store(StoreError::from_sqlx(error))
    }
}

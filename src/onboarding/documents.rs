//! Documents (`POST /v1/users/{id}/documents`, `GET /v1/users/{id}/documents[/{id}]`): an
//! upload is checked against the rules of every linked provider, stored sealed with its
//! submissions and their jobs in one transaction, then sent inline for a fast answer (what does
//! not finish there is retried by the workers). An upload never changes a link's status: only
//! the provider's own word does (its answer to a sync, its webhook, the poller).

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{submissions, OnboardingError, Services};
use crate::crypto::SealBuffer;
use crate::domain::provider::ProviderId;
use crate::domain::verification::{
    DocumentContentType, DocumentSide, DocumentType, VerificationAttestation,
};
use crate::domain::FieldError;
use crate::providers::provider::{DocumentFacts, DocumentPolicy};
use crate::store::documents::{self as store, DocumentRow, NewDocument, SubmissionRow};
use crate::store::{events, links, users};

/// A validated upload, its file not yet stored.
pub struct Upload {
    pub document_type: DocumentType,
    pub side: Option<DocumentSide>,
    pub content_type: DocumentContentType,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    pub file: SealBuffer,
    pub verification: Option<VerificationAttestation>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("document_type", &self.document_type)
            .field("side", &self.side)
            .field("content_type", &self.content_type)
            .field("size", &self.file.len())
            .field("has_verification", &self.verification.is_some())
            .finish_non_exhaustive()
    }
}

/// A document and where it stands at each provider.
#[derive(Debug, Clone)]
pub struct DocumentView {
    pub document: DocumentRow,
    pub submissions: Vec<SubmissionRow>,
}

/// Why an upload or a read did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(transparent)]
    Onboarding(#[from] OnboardingError),
    /// A linked provider would refuse the file: one entry per provider and rule.
    #[error("a linked provider would refuse this document")]
    Refused(Vec<FieldError>),
    #[error("no such document")]
    DocumentNotFound,
}

impl From<crate::store::StoreError> for DocumentError {
    fn from(error: crate::store::StoreError) -> Self {
        DocumentError::Onboarding(OnboardingError::Store(error))
    }
}

impl From<sqlx::Error> for DocumentError {
    fn from(error: sqlx::Error) -> Self {
        DocumentError::Onboarding(error.into())
    }
}

/// An upload stored: its id and the jobs to run inline.
#[derive(Debug)]
pub struct Stored {
    pub user_id: Uuid,
    pub document_id: Uuid,
    jobs: Vec<Uuid>,
}

/// How long workers leave an upload's jobs to the request that runs them inline.
const INLINE_GRACE: Duration = Duration::from_secs(5);

/// Checks the upload against every linked provider's rules, then stores it sealed with one
/// submission per linked provider, the jobs that send them and a `document_uploaded` event, in
/// one transaction. Refused by any provider: `Refused`, and nothing is stored.
pub async fn store(
    services: &Services,
    user_id: Uuid,
    upload: Upload,
) -> Result<Stored, DocumentError> {
    let mut tx = services.pool.begin().await?;
    // The user's links, then the user: the order every writer takes them in (an erasure too, so
    // an upload cannot slip in after it); concurrent uploads for one user take turns, so a back
    // always finds the front uploaded before it.
    let user_links = links::lock_user_links(&mut tx, user_id).await?;
    match users::lock_erasure_state(&mut tx, user_id).await? {
        None => return Err(OnboardingError::NotFound.into()),
        Some(Some(erased_at)) => {
            return Err(OnboardingError::Erased {
                erased_at: Some(erased_at),
            }
            .into())
        }
        Some(None) => {}
    }
    let facts = DocumentFacts {
        document_type: upload.document_type,
        side: upload.side,
        content_type: upload.content_type,
        size: upload.file.len() as u64,
        has_verification: upload.verification.is_some(),
    };
    let document_id = Uuid::now_v7();
    let mut policies: Vec<(ProviderId, DocumentPolicy)> = Vec::with_capacity(user_links.len());
    for link in &user_links {
        let policy =
            submissions::policy(&mut tx, link.provider, user_id, document_id, &facts).await?;
        policies.push((link.provider, policy));
    }
    let refused: Vec<FieldError> = policies
        .iter()
        .filter_map(|(provider, policy)| match policy {
            DocumentPolicy::Refuse { rule, message } => Some(FieldError::new(
                "file",
                rule,
                format!("{provider} would refuse this document: {message}"),
            )),
            _ => None,
        })
        .collect();
    if !refused.is_empty() {
        return Err(DocumentError::Refused(refused));
    }
    let document = store::insert(
        &mut tx,
        &services.keyring,
        NewDocument {
            id: document_id,
            user_id,
            document_type: upload.document_type,
            side: upload.side,
            content_type: upload.content_type,
            sha256: &upload.sha256,
            file: upload.file,
            verification: upload.verification.as_ref(),
        },
    )
    .await?;
    let created =
        submissions::create(&mut tx, services, &document, &policies, INLINE_GRACE).await?;
    let mut trail = vec![(
        "document_uploaded",
        json!({
            "source": "api",
            "document_id": document.id,
            "document_type": document.document_type,
            "side": document.side,
            "content_type": document.content_type,
            "size": document.size,
            "providers": policies.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        }),
    )];
    trail.extend(created.events);
    events::append(&mut tx, user_id, &trail).await?;
    tx.commit().await?;
    tracing::info!(%user_id, document_id = %document.id, "document stored");
    Ok(Stored {
        user_id,
        document_id,
        jobs: created.jobs,
    })
}

/// Sends a stored upload's submissions inline (a provider that does not answer in time leaves
/// them pending for the workers), then reads the document back.
pub async fn finish(services: &Services, stored: Stored) -> Result<DocumentView, DocumentError> {
    super::jobs::run_inline(
        services,
        &services.workers,
        &stored.jobs,
        &services.instance,
    )
    .await;
    get(services, stored.user_id, stored.document_id).await
}

/// The user must exist and not be erased.
async fn readable_user(services: &Services, user_id: Uuid) -> Result<(), OnboardingError> {
    match store::user_erasure_state(&services.pool, user_id).await? {
        None => Err(OnboardingError::NotFound),
        Some(Some(erased_at)) => Err(OnboardingError::Erased {
            erased_at: Some(erased_at),
        }),
        Some(None) => Ok(()),
    }
}

fn views(documents: Vec<DocumentRow>, mut all: Vec<SubmissionRow>) -> Vec<DocumentView> {
    documents
        .into_iter()
        .map(|document| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                all.drain(..).partition(|s| s.document_id == document.id);
            all = rest;
            DocumentView {
                document,
                submissions: mine,
            }
        })
        .collect()
}

/// One document of the user, with its submissions.
pub async fn get(
    services: &Services,
    user_id: Uuid,
    document_id: Uuid,
) -> Result<DocumentView, DocumentError> {
    readable_user(services, user_id).await?;
    let document = store::get(&services.pool, user_id, document_id)
        .await?
        .ok_or(DocumentError::DocumentNotFound)?;
    let submissions = store::submissions_of(&services.pool, &[document_id]).await?;
    Ok(DocumentView {
        document,
        submissions,
    })
}

/// A page of the user's documents, newest first (metadata only, never the files).
pub async fn list(
    services: &Services,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<DocumentView>, bool), OnboardingError> {
    readable_user(services, user_id).await?;
    let mut documents = store::for_user(&services.pool, user_id, before, limit as i64 + 1).await?;
    let has_more = documents.len() > limit;
    documents.truncate(limit);
    let ids: Vec<Uuid> = documents.iter().map(|d| d.id).collect();
    let submissions = store::submissions_of(&services.pool, &ids).await?;
    Ok((views(documents, submissions), has_more))
}

/// A provider linked after the uploads gets a submission for each document already uploaded,
/// checked against its rules (a refusal is `rejected`, with the rule in `last_error`), in the
/// linking transaction; they wait for the new link's account.
pub async fn for_new_link(
    tx: &mut sqlx::PgConnection,
    services: &Services,
    user_id: Uuid,
    provider: ProviderId,
) -> Result<(), OnboardingError> {
    let mut trail = Vec::new();
    // Oldest first, so a back finds its front's submission at the provider.
    for document in store::all_for_user(&mut *tx, user_id).await? {
        let facts = submissions::facts(&document);
        let policy = submissions::policy(tx, provider, user_id, document.id, &facts).await?;
        let created = submissions::create(
            tx,
            services,
            &document,
            &[(provider, policy)],
            Duration::ZERO,
        )
        .await?;
        trail.extend(created.events);
    }
    events::append(tx, user_id, &trail).await?;
    Ok(())
}

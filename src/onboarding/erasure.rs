//! Erasure (`DELETE /v1/users/{id}`): the person's data goes, the audit trail of ids, times and
//! statuses stays.
//!
//! Locally, in one transaction: the sealed profile and e-mail hash, the bodies of the user's
//! webhooks, the stored idempotent answers that show the user and the user's hosted
//! verification sessions are removed, and a
//! `user_erased` event is written. At each linked provider: one that can delete accounts (KillB)
//! gets a durable `erase_link` job (retried through outages like any job); one that cannot
//! (Kraken, Carbn), or that refuses, is listed under `erasure_follow_up` in the reconciliation
//! report for a person to ask the provider. A second DELETE answers the same receipt.
//!
//! Documents: the files, the sealed attestations and the files' digests are deleted in the same
//! transaction; the metadata stays (type, side, size, times, and where each was submitted with
//! the provider's id for it). No provider documents a way to delete a document through its API,
//! so the receipt lists, per provider, the documents it accepted: each needs a manual deletion
//! request at that provider.

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::provider_erasure::follow_up;
use super::queue::{enqueue_link_job, LinkJob};
use super::{OnboardingError, Services};
use crate::domain::verification::{DocumentSide, DocumentType};
use crate::store::jobs::JobKind;
pub use crate::store::links::ProviderErasure;
use crate::store::links::{self, LinkRow};
use crate::store::{documents, events, idempotency, sessions, users, webhooks};

/// One provider's part of an erasure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkErasure {
    pub provider: String,
    /// The provider's id for the account (what to quote when asking the provider by hand).
    pub provider_user_id: Option<String>,
    pub erasure: ProviderErasure,
}

/// A document a provider accepted (it holds a copy the gateway cannot delete).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeldDocument {
    /// The gateway's document id.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub document_type: DocumentType,
    pub side: Option<DocumentSide>,
    /// The provider's id for it, when it gave one (what to quote in the deletion request).
    pub provider_document_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
}

/// The documents one provider holds: a manual deletion request is needed there (no provider
/// documents a deletion API for documents).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentFollowUp {
    pub provider: String,
    /// The provider's id for the account, to quote with the request.
    pub provider_user_id: Option<String>,
    pub documents: Vec<HeldDocument>,
}

/// The answer to `DELETE /v1/users/{id}` (the same for every repeat).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10",
    "erased": true,
    "erased_at": "2026-11-29T10:00:00Z",
    "links": [
        {"provider": "killb", "provider_user_id": "5b0f6a8e-3d7c-4e21-9a4b-8f2d1c6e7a90", "erasure": "deleted"},
        {"provider": "kraken", "provider_user_id": "AA12 N84G 5XCE YMJC", "erasure": "manual_follow_up"}
    ],
    "documents_erased": 2,
    "document_follow_up": [
        {"provider": "kraken", "provider_user_id": "AA12 N84G 5XCE YMJC", "documents": [
            {"id": "01936b2e-8a10-7c3e-9d2f-4b6a8c0e2d41", "type": "passport", "side": "front",
             "provider_document_id": "ver_01J0M9P2T7K3W2BHJ7T9", "submitted_at": "2026-11-29T09:00:00Z"}
        ]}
    ]
}))]
pub struct ErasureReceipt {
    pub id: Uuid,
    /// Always true: the user's personal data is gone from the gateway.
    pub erased: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub erased_at: OffsetDateTime,
    pub links: Vec<LinkErasure>,
    /// Documents whose files and sealed copies were deleted here.
    pub documents_erased: i64,
    /// Per provider, the documents it accepted: each needs a manual deletion request there.
    pub document_follow_up: Vec<DocumentFollowUp>,
}

/// The erasure's document part, as stored (so a repeat answers the same).
async fn document_part(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    links: &[LinkRow],
) -> Result<(i64, Vec<DocumentFollowUp>), OnboardingError> {
    let count = documents::erase_for_user(conn, id).await?;
    let mut follow_up: Vec<DocumentFollowUp> = Vec::new();
    for held in documents::held_by_providers(&mut *conn, id).await? {
        let document = HeldDocument {
            id: held.document_id,
            document_type: held.document_type,
            side: held.side,
            provider_document_id: held.provider_document_id,
            submitted_at: held.submitted_at,
        };
        match follow_up.last_mut() {
            Some(last) if last.provider == held.provider.as_str() => last.documents.push(document),
            _ => follow_up.push(DocumentFollowUp {
                provider: held.provider.as_str().to_owned(),
                provider_user_id: links
                    .iter()
                    .find(|l| l.provider == held.provider)
                    .and_then(|l| l.provider_user_id.clone()),
                documents: vec![document],
            }),
        }
    }
    Ok((count, follow_up))
}

fn receipt(
    id: Uuid,
    erased_at: OffsetDateTime,
    links: Vec<LinkRow>,
    (documents_erased, document_follow_up): (i64, Vec<DocumentFollowUp>),
) -> ErasureReceipt {
    ErasureReceipt {
        id,
        erased: true,
        erased_at,
        documents_erased,
        document_follow_up,
        links: links
            .into_iter()
            .map(|link| LinkErasure {
                erasure: link.erasure.unwrap_or(ProviderErasure::ManualFollowUp),
                provider: link.provider.as_str().to_owned(),
                provider_user_id: link.provider_user_id,
            })
            .collect(),
    }
}

/// Erases the user's personal data and asks each linked provider to do the same.
pub async fn erase(services: &Services, id: Uuid) -> Result<ErasureReceipt, OnboardingError> {
    let pool = &services.pool;
    let mut tx = pool.begin().await?;
    // The user's links first, then the user: the order a link change takes them in (its links,
    // then the user's summary status), so an erasure cannot deadlock with a sync or submission
    // recording an answer for the same user.
    links::lock_user_links(&mut tx, id).await?;
    let Some(already) = users::lock_erasure_state(&mut tx, id).await? else {
        return Err(OnboardingError::NotFound);
    };
    if let Some(erased_at) = already {
        let links = links::for_users(&mut *tx, &[id]).await?;
        // Idempotent: nothing is left to delete, and the same documents are listed.
        let documents = document_part(&mut tx, id, &links).await?;
        tx.rollback().await?;
        return Ok(receipt(id, erased_at, links, documents));
    }
    let erased_at = users::erase(&mut tx, id).await?;
    let bodies = webhooks::forget_user_bodies(&mut tx, id).await?;
    let answers = idempotency::forget_resource(&mut tx, id).await?;
    let before = links::for_users(&mut *tx, &[id]).await?;
    let documents = document_part(&mut tx, id, &before).await?;
    let session_urls = sessions::forget_user(&mut tx, id).await?;
    let mut job_ids = Vec::new();
    let mut outcomes = Vec::new();
    for link in links::for_users(&mut *tx, &[id]).await? {
        let provider = link.provider;
        let connector = services.providers.connector(provider);
        let erasure = match (&link.provider_user_id, connector) {
            (None, _) => ProviderErasure::NotSubmitted,
            (Some(_), Some(connector)) if connector.supports_deletion() => {
                job_ids.push(
                    enqueue_link_job(
                        &mut tx,
                        JobKind::EraseLink,
                        &LinkJob {
                            user_id: id,
                            provider,
                            fields: Vec::new(),
                        },
                        services.workers.max_attempts,
                    )
                    .await?,
                );
                ProviderErasure::Pending
            }
            (Some(_), connector) => {
                let why = match connector {
                    Some(_) => "the provider offers no deletion API; ask it to delete the account",
                    None => "the provider is not configured here; ask it to delete the account",
                };
                follow_up(&mut tx, &link, "erasure_not_supported", why).await?;
                ProviderErasure::ManualFollowUp
            }
        };
        links::set_erasure(&mut tx, id, link.provider, erasure).await?;
        outcomes.push(json!({ "provider": link.provider, "erasure": erasure.as_str() }));
    }
    events::insert(
        &mut tx,
        id,
        "user_erased",
        json!({
            "source": "api",
            "providers": outcomes,
            "webhook_bodies_removed": bodies,
            "idempotent_answers_removed": answers,
            "documents_erased": documents.0,
            "document_follow_up": documents.1.iter().map(|f| json!({
                "provider": f.provider, "documents": f.documents.len(),
            })).collect::<Vec<_>>(),
            "verification_sessions_removed": session_urls,
        }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %id, "user erased");
    crate::onboarding::jobs::run_inline(services, &services.workers, &job_ids, &services.instance)
        .await;
    let links = links::for_users(pool, &[id]).await?;
    Ok(receipt(id, erased_at, links, documents))
}

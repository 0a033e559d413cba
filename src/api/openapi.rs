//! The OpenAPI 3.1 document, generated from the handlers' annotations; served at
//! `/openapi.json` with Swagger UI (vendored, works offline) at `/docs`.

use actix_web::HttpResponse;
use utoipa::openapi::path::Parameter;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::domain::provider::ProviderId;

use super::{
    documents, health, jobs, me, ops, problem, providers, reconciliation, resources, sessions,
    users, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "onboarding-gateway",
        description = "Conventions: JSON with snake_case fields, RFC 3339 UTC timestamps, ISO dates, ISO 3166-1 alpha-2 countries \
(case-insensitive on input, uppercase on output), ISO 639-1 languages, E.164 phones (spaces, dashes, dots and \
parentheses accepted on input). Unknown fields are rejected. Every response carries `x-request-id` (echoed when \
the caller sends a safe one). Errors are RFC 9457 problem documents (`application/problem+json`) with a stable \
`code`, the `request_id`, and `errors[]` naming each offending field by its JSON path.\n\n\
Authentication: `Authorization: Bearer <api key>`; scopes `users:read`, `users:write`, `ops`. \
Each key is rate limited (`[rate_limit]`, token bucket per key): over the limit, any authenticated endpoint answers \
`429 rate_limited` with `Retry-After`. \
When the gateway already works on `server.max_requests_in_flight` API requests, one more is refused at once with \
`503 overloaded` and `Retry-After` (nothing of it was done: retrying is always safe). \
`POST /v1/webhooks/{provider}` takes no API key: each provider's own signature authenticates it."
    ),
    paths(
        users::create_user,
        users::list_users,
        users::get_user,
        users::patch_user,
        users::erase_user,
        users::list_events,
        users::link_provider,
        users::sync_user,
        users::reveal_fields,
        me::get_me,
        documents::upload_document,
        documents::list_documents,
        documents::get_document,
        providers::user_requirements,
        sessions::create_session,
        providers::list_providers,
        jobs::list_jobs,
        jobs::retry_job,
        jobs::retry_jobs,
        ops::get_overview,
        reconciliation::get_report,
        reconciliation::run_now,
        webhooks::receive,
        health::live,
        health::ready,
        health::metrics,
    ),
    components(schemas(
        problem::ProblemDocument,
        problem::FieldErrorDocument,
        resources::UserResource,
        resources::LinkResource,
        resources::LinkError,
        resources::UserList,
        resources::UserInView,
        resources::MaskedUserResource,
        crate::domain::masking::MaskedUser,
        crate::domain::masking::MaskedName,
        crate::domain::masking::MaskedBirthPlace,
        crate::domain::masking::MaskedAddress,
        crate::domain::masking::MaskedIdentityDocument,
        crate::domain::masking::MaskedTaxId,
        crate::domain::masking::RevealableField,
        users::View,
        users::RevealRequest,
        users::SyncRequest,
        users::RevealResponse,
        me::MeResource,
        resources::EventResource,
        resources::EventList,
        users::LinkProviderRequest,
        crate::onboarding::erasure::ErasureReceipt,
        crate::onboarding::erasure::LinkErasure,
        crate::onboarding::erasure::ProviderErasure,
        crate::onboarding::erasure::DocumentFollowUp,
        crate::onboarding::erasure::HeldDocument,
        documents::DocumentUploadForm,
        documents::DocumentResource,
        documents::SubmissionResource,
        documents::DocumentList,
        crate::store::documents::SubmissionStatus,
        crate::domain::verification::DocumentType,
        crate::domain::verification::DocumentSide,
        crate::domain::verification::DocumentContentType,
        crate::domain::verification::VerificationAttestation,
        providers::ProviderResource,
        providers::ProviderList,
        providers::ProviderRequirements,
        providers::RequirementsList,
        crate::domain::verification::NextAction,
        crate::domain::verification::NextActionKind,
        crate::domain::verification::DocumentType,
        crate::domain::verification::Rejection,
        sessions::VerificationSessionRequest,
        sessions::VerificationSessionResource,
        jobs::JobResource,
        jobs::JobList,
        jobs::RetryJobRequest,
        jobs::RetryJobsRequest,
        jobs::RetryJobsResponse,
        reconciliation::ReconciliationReport,
        reconciliation::ReconciliationSection,
        reconciliation::ReconciliationLink,
        reconciliation::FailedJobsSection,
        crate::onboarding::reconcile::ReconciliationRun,
        crate::onboarding::overview::Overview,
        crate::onboarding::overview::Counts,
        crate::onboarding::overview::WebhookFailures,
        crate::onboarding::reconcile::ReconciliationSummary,
        crate::onboarding::reconcile::StatusChange,
        webhooks::WebhookAck,
    )),
    modifiers(&SecurityAddon, &ProvidersAddon),
    tags(
        (name = "users", description = "The canonical user and its provider links"),
        (name = "providers", description = "Configured providers, their state, routing and requirements"),
        (name = "documents", description = "A user's documents: uploaded once, sealed at rest, sent to every linked provider that takes them"),
        (name = "webhooks", description = "Inbound provider webhooks, authenticated by each provider's signature"),
        (name = "operations", description = "Health, readiness, metrics, the background job queue and reconciliation"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key configured in `auth.api_keys` (stored as its SHA-256).",
                    ))
                    .build(),
            ),
        );
    }
}

/// What the document says of the providers, taken from the provider list and each provider's
/// folder (names, webhook signatures and their headers), so adding a provider needs no edit here.
struct ProvidersAddon;

/// `a`, `a and b`, `a, b and c`.
fn enumerate(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

impl Modify for ProvidersAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let names: Vec<String> = ProviderId::ALL
            .iter()
            .map(|id| id.display_name().to_owned())
            .collect();
        let conventions = openapi.info.description.take().unwrap_or_default();
        openapi.info.description = Some(format!(
            "One API for onboarding users (KYC profiles) at {}.\n\n{conventions}",
            enumerate(&names, "and")
        ));
        let schemes: Vec<String> = crate::providers::modules()
            .map(|m| m.webhook_signature().scheme.to_owned())
            .collect();
        if let Some(tag) = openapi
            .tags
            .iter_mut()
            .flatten()
            .find(|t| t.name == "webhooks")
        {
            let text = tag.description.take().unwrap_or_default();
            tag.description = Some(format!("{text}: {}", schemes.join(", ")));
        }
        let Some(operation) = openapi
            .paths
            .paths
            .get_mut("/v1/webhooks/{provider}")
            .and_then(|item| item.post.as_mut())
        else {
            return;
        };
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        let ids: Vec<String> = ProviderId::ALL.iter().map(|id| format!("`{id}`")).collect();
        for parameter in parameters.iter_mut() {
            if let RefOr::T(p) = parameter {
                if p.name == "provider" {
                    p.description = Some(enumerate(&ids, "or"));
                }
            }
        }
        for module in crate::providers::modules() {
            for (name, description) in module.webhook_signature().headers {
                let header = serde_json::json!({
                    "name": name,
                    "in": "header",
                    "description": format!("{}: {description}", module.id()),
                    "required": false,
                    "schema": {"type": ["string", "null"]},
                });
                if let Ok(header) = serde_json::from_value::<Parameter>(header) {
                    parameters.push(RefOr::T(header));
                }
            }
        }
    }
}

/// The document as served and as committed in `openapi/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", document())
}

pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("location", "/docs/"))
        .finish()
}

//! `Idempotency-Key` for POST and PATCH: the first request with a key does the work and its
//! answer (success or 4xx) is stored; a retry with the same key and body gets that answer
//! replayed (`Idempotent-Replayed: true`); the same key with a different body is
//! `409 idempotency_key_reused`; a retry while the first is still running is
//! `409 idempotency_request_in_progress`. Keys are scoped to the API key and kept 24 hours.

use std::future::Future;

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use sqlx::PgPool;

use super::problem::Problem;
use crate::auth::Principal;
use crate::crypto::Keyring;
use crate::domain::FieldError;
use crate::store::idempotency::{self, Claim, KeyedRequest, StoredResponse};

pub const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

/// What a use-case answered: a status and a JSON body.
pub type Answer = (StatusCode, serde_json::Value);

fn key_of(req: &HttpRequest) -> Result<Option<String>, Problem> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    let valid = !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(Problem::validation(vec![FieldError {
            field: "Idempotency-Key".into(),
            code: "invalid_format",
            message: "must be 1 to 255 visible ASCII characters (a UUID is a good choice)".into(),
        }]));
    }
    Ok(Some(key.to_owned()))
}

fn json_response(status: StatusCode, body: Vec<u8>, content_type: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, content_type.to_owned()))
        .body(body)
}

fn render(result: &Result<Answer, Problem>, user_id: Option<uuid::Uuid>) -> StoredResponse {
    match result {
        Ok((status, body)) => StoredResponse {
            status: status.as_u16(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            // The user the route names, or else the user this answer shows, so erasing the user
            // removes the stored answer too.
            resource_id: user_id.or_else(|| {
                body.get("id")
                    .and_then(|id| id.as_str())
                    .and_then(|id| uuid::Uuid::parse_str(id).ok())
            }),
        },
        Err(problem) => StoredResponse {
            status: problem.status.as_u16(),
            headers: vec![("content-type".into(), "application/problem+json".into())],
            body: problem.document().to_string().into_bytes(),
            resource_id: None,
        },
    }
}

fn into_response(stored: StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let content_type = stored
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or("application/json");
    let mut response = json_response(status, stored.body, content_type);
    if replayed {
        response.headers_mut().insert(
            HeaderName::from_static(REPLAYED),
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// Runs `work` at most once per (API key, Idempotency-Key), replaying its answer afterwards.
/// The stored answer belongs to the user whose `id` it shows (erasure removes it).
pub async fn run<F, Fut>(
    pool: &PgPool,
    keyring: &Keyring,
    req: &HttpRequest,
    principal: &Principal,
    body: &serde_json::Value,
    work: F,
) -> Result<HttpResponse, Problem>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Answer, Problem>>,
{
    run_for_user(pool, keyring, req, principal, body, None, work).await
}

/// [`run`] for an answer about `user_id` that does not show the user's `id` (erasing the user
/// removes the stored answer all the same).
pub async fn run_for_user<F, Fut>(
    pool: &PgPool,
    keyring: &Keyring,
    req: &HttpRequest,
    principal: &Principal,
    body: &serde_json::Value,
    user_id: Option<uuid::Uuid>,
    work: F,
) -> Result<HttpResponse, Problem>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Answer, Problem>>,
{
    let keyed = KeyedWork {
        pool,
        keyring,
        req,
        principal,
        body,
        user_id,
    };
    keyed.run(false, |_| work()).await
}

/// What [`run_creating`]'s work is given: the id to create under, and whether a request with
/// the same key may already have created it (its answer was lost: the process died, or the
/// database went away before the answer was stored).
#[derive(Debug, Clone, Copy)]
pub struct Reserved {
    pub id: uuid::Uuid,
    pub maybe_created: bool,
}

/// [`run`] for a request that creates a resource: the new id is reserved with the key before
/// the work runs, so a retry after a lost answer finds what the first attempt created (and
/// answers it) instead of creating it twice or refusing it as a duplicate.
pub async fn run_creating<F, Fut>(
    pool: &PgPool,
    keyring: &Keyring,
    req: &HttpRequest,
    principal: &Principal,
    body: &serde_json::Value,
    work: F,
) -> Result<HttpResponse, Problem>
where
    F: FnOnce(Reserved) -> Fut,
    Fut: Future<Output = Result<Answer, Problem>>,
{
    let keyed = KeyedWork {
        pool,
        keyring,
        req,
        principal,
        body,
        user_id: None,
    };
    keyed.run(true, work).await
}

struct KeyedWork<'a> {
    pool: &'a PgPool,
    keyring: &'a Keyring,
    req: &'a HttpRequest,
    principal: &'a Principal,
    body: &'a serde_json::Value,
    user_id: Option<uuid::Uuid>,
}

impl KeyedWork<'_> {
    async fn run<F, Fut>(self, reserve: bool, work: F) -> Result<HttpResponse, Problem>
    where
        F: FnOnce(Reserved) -> Fut,
        Fut: Future<Output = Result<Answer, Problem>>,
    {
        let KeyedWork {
            pool,
            keyring,
            req,
            principal,
            body,
            user_id,
        } = self;
        let fresh = Reserved {
            id: uuid::Uuid::now_v7(),
            maybe_created: false,
        };
        let Some(key) = key_of(req)? else {
            let result = work(fresh).await;
            return match result {
                Ok(_) => Ok(into_response(render(&result, user_id), false)),
                Err(problem) => Ok(problem.error_response()),
            };
        };
        // The body's canonical serialisation, so whitespace differences are the same request; keyed,
        // because the body holds personal data and a plain digest could be confirmed by guessing.
        let request_hash =
            hex::encode(keyring.lookup_hash("idempotency.request", &body.to_string()));
        let keyed = KeyedRequest {
            api_key_name: &principal.name,
            key: &key,
            method: req.method().as_str(),
            path: req.path(),
            request_hash: &request_hash,
            reserved_id: reserve.then_some(fresh.id),
        };
        match idempotency::claim(pool, keyring, &keyed)
            .await
            .map_err(|e| Problem::from(crate::onboarding::OnboardingError::Store(e)))?
        {
            Claim::Replay(stored) => {
                crate::telemetry::record_idempotent_replay();
                Ok(into_response(stored, true))
            }
            Claim::Reused => Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request",
            )
            .detail("use a new Idempotency-Key for a different request body or endpoint")),
            Claim::InProgress => Err(Problem {
                retry_after_secs: Some(1),
                ..Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency_request_in_progress",
                    "A request with this Idempotency-Key is still being processed",
                )
                .detail("retry shortly to receive its answer")
            }),
            Claim::Claimed {
                resource_id,
                retaken,
            } => {
                let reserved = match resource_id {
                    Some(id) => Reserved {
                        id,
                        maybe_created: retaken,
                    },
                    None => fresh,
                };
                let result = work(reserved).await;
                let stored = render(&result, user_id);
                let outcome = if stored.status >= 500 && reserve {
                    // The work may have committed before it failed: the retry must find it under
                    // the reserved id, so the claim is kept and only made free to take at once.
                    idempotency::reopen(pool, &principal.name, &key).await
                } else if stored.status >= 500 {
                    // A server failure is not an answer worth replaying: let the client retry.
                    idempotency::release(pool, &principal.name, &key).await
                } else {
                    idempotency::complete(pool, keyring, &principal.name, &key, &stored).await
                };
                if let Err(e) = outcome {
                    tracing::error!(error = %e, "idempotency record update failed");
                }
                match result {
                    Ok(_) => Ok(into_response(stored, false)),
                    Err(problem) => Ok(problem.error_response()),
                }
            }
        }
    }
}

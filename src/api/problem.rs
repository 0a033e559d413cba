//! RFC 9457 problem documents: every error the API returns, with a stable `code`, the
//! request id, and per-field errors naming the JSON path. A 5xx never carries internals.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::request_id;
use crate::domain::FieldError;

/// An error answer. Build one with the constructors; the handler returns it as `Err`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extra top-level members (e.g. `existing_user_id`), kept small and PII-free.
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub retry_after_secs: Option<u64>,
    pub allow: Option<&'static str>,
}

/// The problem document's wire shape (for OpenAPI and for tests).
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/validation_failed",
    "title": "The request has invalid fields",
    "status": 422,
    "detail": "2 fields are invalid",
    "code": "validation_failed",
    "request_id": "0193a5c2-7f7e-7c1a-9d1e-5b2f0c3a4d5e",
    "errors": [
        {"field": "address.country", "code": "invalid_country", "message": "must be an ISO 3166-1 alpha-2 country code, e.g. DE"},
        {"field": "date_of_birth", "code": "underage", "message": "the user must be at least 18 years old"}
    ]
}))]
pub struct ProblemDocument {
    /// A URI reference naming the problem type: `/problems/{code}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `user_already_exists`.
    pub code: String,
    /// The `x-request-id` of the request, for support and log correlation.
    pub request_id: String,
    /// One entry per offending field; empty when the problem is not about fields.
    #[serde(default)]
    pub errors: Vec<FieldErrorDocument>,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldErrorDocument {
    /// JSON path of the field in the request body, e.g. `tax_ids[0].number`.
    pub field: String,
    pub code: String,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Self {
            status,
            code,
            title,
            detail: title.to_owned(),
            errors: Vec::new(),
            extra: serde_json::Map::new(),
            retry_after_secs: None,
            allow: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn with_extra(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => format!("{}: {}", display_field(&errors[0].field), errors[0].message),
            n => format!("{n} fields are invalid"),
        };
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "The request has invalid fields",
            )
            .detail(detail)
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "The request body is not valid JSON",
        )
        .detail(detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or unknown API key",
        )
        .detail("send `Authorization: Bearer <api key>`")
    }

    pub fn forbidden(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The API key lacks the scope this operation needs",
        )
        .detail(format!("this operation needs the `{scope}` scope"))
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found").detail(detail)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed on this resource",
            )
            .detail(format!("allowed methods: {allow}"))
        }
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large",
        )
        .detail(format!("request bodies are limited to {limit} bytes"))
    }

    /// `429 rate_limited`, with `Retry-After` rounded up to whole seconds (at least 1).
    pub fn rate_limited(wait: std::time::Duration, title: &'static str) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after_secs: Some(secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", title)
                .detail("slow down and retry after the number of seconds in Retry-After")
        }
    }

    /// Admission control refused the request: `limit` API requests were already in flight.
    pub fn overloaded(limit: usize) -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "The gateway is at its limit of requests in flight",
            )
            .detail(format!(
                "{limit} requests were already being worked on; nothing of this one was done. \
                 Retry after the number of seconds in Retry-After"
            ))
        }
    }

    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body arrived too slowly",
        )
        .detail(format!(
            "the whole request body must arrive within {} seconds",
            limit.as_secs()
        ))
    }

    pub fn unsupported_media_type(accepted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported content type",
        )
        .detail(format!("send the body as {accepted}"))
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "The service is temporarily unavailable",
            )
            .detail(detail)
        }
    }

    /// An unexpected failure. The cause is logged by the caller (without PII); the client
    /// only learns that it happened and the request id to quote.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .detail("an unexpected error occurred; quote the request_id when reporting it")
    }

    pub fn document(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "type": format!("/problems/{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
            "request_id": request_id::current().unwrap_or_default(),
            "errors": self.errors,
        });
        if let Some(map) = body.as_object_mut() {
            for (k, v) in &self.extra {
                map.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

fn display_field(field: &str) -> &str {
    if field.is_empty() {
        "body"
    } else {
        field
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = self.allow {
            response.insert_header((header::ALLOW, allow));
        }
        response.body(self.document().to_string())
    }
}

impl From<crate::auth::AuthFailure> for Problem {
    fn from(failure: crate::auth::AuthFailure) -> Self {
        match failure {
            crate::auth::AuthFailure::Unauthenticated => Problem::unauthorized(),
            crate::auth::AuthFailure::Forbidden(scope) => Problem::forbidden(scope.as_str()),
        }
    }
}

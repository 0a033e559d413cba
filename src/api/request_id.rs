//! `x-request-id`: echoed when the caller sends a sane one, generated otherwise, attached to
//! the request's tracing span, every problem document and the response headers. The same
//! middleware times the request (metrics, completion log line, `Server-Timing`).
//!
//! It runs on every request, so it spends only what its output needs (README "Performance",
//! profile findings): the route template comes from the router's own match (each resource
//! carries its [`RouteTemplate`]) instead of matching the path a second time; the span's fields
//! are formatted once, at its start (route, status and latency go on the completion line only:
//! each field recorded on a span later re-parses the span's JSON fields); metric handles are
//! cached per label set.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// The id of the request being handled on this task, if any.
pub use crate::telemetry::current_request_id as current;

/// The request id as stored in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The route template of a resource (`/v1/users/{id}`), as its app data: once the router has
/// matched a request to the resource, the template is on the request (metrics and logs label
/// by it, never by the raw path).
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// Accepts a caller's id only if it is short and made of safe characters, so it can be
/// logged and echoed without risk of header or log injection.
fn sanitize(candidate: &str) -> Option<String> {
    let ok = !candidate.is_empty()
        && candidate.len() <= 128
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| candidate.to_owned())
}

/// Middleware: request id, one tracing span per request, and a completion log line with the
/// route template (never the raw path or query, which may carry PII such as an email filter).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(sanitize)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    // The route is known only once routed, after the handler: it goes on the completion line
    // (recording it on the span would re-parse and re-write the span's JSON fields).
    let span = tracing::info_span!("http_request", request_id = %id, method = %method);
    let started = Instant::now();
    let provider_time = crate::telemetry::ProviderTime::default();
    let result = crate::telemetry::with_request_id(id.clone(), provider_time.scope(next.call(req)))
        .instrument(span.clone())
        .await;
    let latency = started.elapsed();
    let mut response = result?;
    let status = response.status();
    let matched;
    let route = match response.request().app_data::<RouteTemplate>() {
        Some(&RouteTemplate(route)) => {
            crate::telemetry::record_routed_request(&method, route, status.as_u16(), latency);
            route
        }
        // Not one of `api::routes`' resources: the docs' own services, or no route at all
        // (rare: only here is the path matched again).
        None => {
            matched = response.request().match_pattern();
            let route = matched.as_deref().unwrap_or("unmatched");
            crate::telemetry::record_http_request(method.as_str(), route, status.as_u16(), latency);
            route
        }
    };
    span.in_scope(|| {
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(route, status = status.as_u16(), latency_ms = %format_args!("{latency_ms:.2}"), "request failed");
        } else {
            tracing::info!(route, status = status.as_u16(), latency_ms = %format_args!("{latency_ms:.2}"), "request completed");
        }
    });
    // Both values are owned strings handed over as they are (no copy into the header).
    if let Ok(value) = HeaderValue::try_from(id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    if let Ok(value) = HeaderValue::try_from(crate::telemetry::server_timing(
        latency,
        provider_time.get(),
    )) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("server-timing"), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn only_safe_ids_are_echoed() {
        assert_eq!(sanitize("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(sanitize(""), None);
        assert_eq!(sanitize("has space"), None);
        assert_eq!(sanitize("new\nline"), None);
        assert_eq!(sanitize(&"a".repeat(129)), None);
    }
}

//! Request recording and fault injection, applied to every provider request before auth.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use time::OffsetDateTime;

use super::simulator;
use super::state::{FaultSpec, RecordedRequest, SimState};
use crate::domain::provider::ProviderId;

/// The accepted connection's socket (a duplicate fd), so a fault can drop it.
pub(crate) struct ConnSocket(Arc<OwnedFd>);

pub(crate) fn remember_connection(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
            ext.insert(ConnSocket(Arc::new(fd)));
        }
    }
}

fn drop_connection(req: &HttpRequest) {
    if let Some(ConnSocket(fd)) = req.conn_data::<ConnSocket>() {
        if let Ok(dup) = fd.try_clone() {
            let _ = std::net::TcpStream::from(dup).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The raw request-target.
pub(crate) fn target(req: &HttpRequest) -> String {
    req.uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.path().to_owned())
}

/// Records the request (unless `SimConfig::record` is off), then applies the first matching fault. `Err` is the response to send.
pub(crate) async fn enter(
    state: &SimState,
    provider: ProviderId,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(), HttpResponse> {
    let path = target(req);
    let recorded = state.config.record.then(|| {
        let mut headers = BTreeMap::new();
        for (name, value) in req.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        RecordedRequest {
            seq: 0,
            provider: Some(provider),
            method: req.method().as_str().to_owned(),
            path: path.clone(),
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
            received_at: OffsetDateTime::now_utc(),
        }
    });
    let fault = {
        let mut store = state.lock();
        if let Some(mut recorded) = recorded {
            recorded.seq = store.requests.len() as u64 + 1;
            store.requests.push(recorded);
        }
        let method = req.method().as_str();
        let position = store.faults.iter().position(|f| {
            f.spec.provider == provider
                && f.spec.path.as_deref().is_none_or(|p| path.starts_with(p))
                && f.spec
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        });
        position.map(|i| {
            let fault = &mut store.faults[i];
            fault.hits += 1;
            let spec = fault.spec.clone();
            if spec.count.is_some_and(|c| fault.hits >= c) {
                store.faults.remove(i);
            }
            spec
        })
    };
    let Some(fault) = fault else {
        return Ok(());
    };
    if fault.after_handling {
        // Applied by `after_handling` once the handler has acted on the request.
        req.extensions_mut().insert(LostAnswer(fault));
        return Ok(());
    }
    apply(&fault, provider, req).await
}

/// A fault that waits for the handler's effect (`FaultSpec::after_handling`).
struct LostAnswer(FaultSpec);

/// Applies a request's `after_handling` fault to the answer the provider made: the work is
/// done, and the answer is delayed, replaced by an error, hung or dropped with the connection.
pub(crate) async fn after_handling(response: ServiceResponse) -> ServiceResponse {
    let fault = response.request().extensions_mut().remove::<LostAnswer>();
    let Some(LostAnswer(fault)) = fault else {
        return response;
    };
    match apply(&fault, fault.provider, response.request()).await {
        Ok(()) => response,
        Err(replacement) => response.into_response(replacement),
    }
}

/// What a matched fault does to a request. `Err` is the response to send instead.
async fn apply(
    fault: &FaultSpec,
    provider: ProviderId,
    req: &HttpRequest,
) -> Result<(), HttpResponse> {
    if fault.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
    }
    if fault.drop_connection {
        drop_connection(req);
        return Err(HttpResponse::InternalServerError().finish());
    }
    if fault.timeout {
        tokio::time::sleep(Duration::from_secs(600)).await;
        return Err(HttpResponse::GatewayTimeout().finish());
    }
    if let Some(status) = fault.status {
        if rand::random::<f64>() < fault.error_rate {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = simulator(provider).fault_error(status, req);
            if let Some(secs) = fault.retry_after_secs {
                if let Ok(value) = secs.to_string().parse() {
                    response
                        .headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, value);
                }
            }
            return Err(response);
        }
    }
    Ok(())
}

/// Default service: a provider-shaped 404 for unknown provider paths, plain JSON otherwise.
pub(crate) async fn not_found(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let owner = ProviderId::ALL
        .iter()
        .copied()
        .find(|&id| simulator(id).owns_path(req.path()));
    match owner {
        Some(provider) => {
            if let Err(response) = enter(&state, provider, &req, &body).await {
                return response;
            }
            simulator(provider).not_found(&req)
        }
        None => HttpResponse::NotFound().json(serde_json::json!({"error": "not found"})),
    }
}

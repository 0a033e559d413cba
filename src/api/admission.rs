//! Admission control: at most `server.max_requests_in_flight` API requests are worked on at
//! once; one more is answered `503 overloaded` with `Retry-After` at once instead of queueing.
//! Under overload a queue only grows (memory, and latency for everyone already waiting), while
//! a fast refusal lets clients back off and keeps the requests already admitted fast.
//! Health, metrics and docs are never refused: they are how ops see the overload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use super::problem::Problem;

/// The shared count of API requests in flight (one per process, across worker threads).
#[derive(Debug)]
pub struct Admission {
    in_flight: AtomicUsize,
    limit: usize,
}

impl Admission {
    /// `limit` 0 admits everything.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            limit,
        })
    }

    /// API requests being worked on now (for `/metrics`).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The configured limit (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A permit for one more request, unless `limit` are already in flight.
    fn admit(self: &Arc<Self>) -> Option<Permit> {
        if self.limit == 0 {
            return Some(Permit(None));
        }
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if previous >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Permit(Some(self.clone())))
    }
}

/// Held for the life of an admitted request (dropped also when the client goes away mid-way).
struct Permit(Option<Arc<Admission>>);

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(admission) = &self.0 {
            admission.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let admission = req
        .app_data::<web::Data<super::AppState>>()
        .map(|state| state.admission.clone());
    let Some(admission) = admission.filter(|_| req.path().starts_with("/v1/")) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let Some(_permit) = admission.admit() else {
        crate::telemetry::record_request_shed();
        let problem = Problem::overloaded(admission.limit);
        return Ok(req
            .into_response(problem.error_response())
            .map_into_right_body());
    };
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let admission = Admission::new(2);
        let first = admission.admit().expect("first");
        let second = admission.admit().expect("second");
        assert!(admission.admit().is_none(), "a third is refused");
        drop(first);
        let third = admission.admit().expect("a slot was freed");
        drop((second, third));
        assert_eq!(admission.in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn zero_admits_everything() {
        let admission = Admission::new(0);
        let permits: Vec<_> = (0..10_000).map(|_| admission.admit().unwrap()).collect();
        drop(permits);
        assert_eq!(admission.in_flight.load(Ordering::Acquire), 0);
    }
}

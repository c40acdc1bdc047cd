//! Load shedding: at most `ONGI_MAX_IN_FLIGHT` requests to the work routes (`/api`,
//! `/events`, `/batch`) are handled at once; the next is answered at once with 503 and
//! `Retry-After`, so an overloaded process tells its callers to back off instead of
//! queueing requests without bound. Health, readiness, metrics and the OpenAPI document are
//! never shed: a probe must see the process alive while it sheds.
//!
//! Written here rather than with tower's `LoadShed` + `ConcurrencyLimit` because those answer
//! with an error type that still needs mapping to the envelope, and cannot exempt the probes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// How long a shed caller is told to wait: one album call's worth.
pub const SHED_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The in-flight limit shared by every connection of the process.
#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl Admission {
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit.max(1))),
            limit: limit.max(1),
        }
    }
}

fn is_work(path: &str) -> bool {
    ["/api/", "/events/", "/batch/"].iter().any(|p| path.starts_with(p))
}

pub async fn shed_when_full(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    if !is_work(request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_slot) = admission.slots.clone().try_acquire_owned() else {
        metrics::counter!("ongi_requests_shed_total").increment(1);
        tracing::warn!(
            path = request.uri().path(),
            limit = admission.limit,
            "request shed: in-flight limit reached"
        );
        return ApiError::Unavailable {
            message: format!(
                "this server is handling its limit of {} requests (ONGI_MAX_IN_FLIGHT); retry shortly",
                admission.limit
            ),
            retry_after: SHED_RETRY_AFTER,
        }
        .into_response();
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn probes_are_never_shed() {
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert!(!super::is_work(path), "{path}");
        }
        for path in ["/api/albums/quality", "/events/storage", "/batch/reprocess"] {
            assert!(super::is_work(path), "{path}");
        }
    }
}

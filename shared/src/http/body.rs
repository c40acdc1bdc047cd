//! Request bodies are read whole, within a deadline and the size limit, before a request
//! takes a work slot ([`super::admission`]). A client that sends its body slowly (or never
//! finishes it) then holds only its own connection until the deadline, never one of the
//! `ONGI_MAX_IN_FLIGHT` slots that every legitimate call needs.
//!
//! The bytes of bodies held at once are bounded across every connection
//! (`ONGI_BODY_MEMORY_MB`): before a byte is read, a body reserves its declared length (a
//! body without one, the whole limit) and holds it until its response is made. Thousands of
//! connections each sending most of a megabyte then hold that budget, not gigabytes; the
//! next body is answered 503 with `Retry-After` at once.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::Semaphore;

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// How a body is read: its deadline, and the memory all bodies share (in KiB permits).
#[derive(Clone)]
pub struct BodyReading {
    deadline: Duration,
    memory_kib: Arc<Semaphore>,
    limit_bytes: usize,
}

impl BodyReading {
    pub fn new(deadline: Duration, body_memory_bytes: usize) -> Self {
        let kib = (body_memory_bytes >> 10).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            deadline,
            memory_kib: Arc::new(Semaphore::new(kib)),
            limit_bytes: body_memory_bytes,
        }
    }

    /// KiB of body memory left (for tests and metrics).
    pub fn available_kib(&self) -> usize {
        self.memory_kib.available_permits()
    }
}

/// Reads the body into memory (at most [`MAX_BODY_BYTES`], within the deadline, under the
/// shared body memory), then passes the request on with that buffered body: 413 past the
/// limit (or declared past it), 503 when the body memory is taken, 408 past the deadline.
pub async fn read_body_in_time(State(reading): State<BodyReading>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = body.size_hint().upper().and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response();
    }
    let reserve = declared.unwrap_or(MAX_BODY_BYTES);
    let kib = u32::try_from(reserve.div_ceil(1024)).unwrap_or(u32::MAX);
    let Ok(_memory) = reading.memory_kib.clone().try_acquire_many_owned(kib) else {
        metrics::counter!("ongi_requests_shed_total").increment(1);
        tracing::warn!(path = parts.uri.path(), "request shed: body memory in use");
        return ApiError::Unavailable {
            message: format!(
                "this server holds its limit of {} MiB of request bodies (ONGI_BODY_MEMORY_MB); retry shortly",
                reading.limit_bytes >> 20
            ),
            retry_after: super::admission::SHED_RETRY_AFTER,
        }
        .into_response();
    };
    let deadline = reading.deadline;
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let bytes = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response();
        }
        Ok(Err(e)) => return ApiError::InvalidRequest(format!("the body could not be read: {e}")).into_response(),
        Err(_) => {
            tracing::info!(path = parts.uri.path(), "request body not received in time");
            return ApiError::RequestTimeout(deadline).into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

//! Request bodies are read whole, within a deadline and the size limit, before a request
//! takes a work slot ([`super::admission`]). A client that sends its body slowly (or never
//! finishes it) then holds only its own connection until the deadline, never one of the
//! `ONGI_MAX_IN_FLIGHT` slots that every legitimate call needs.
//!
//! The bytes of bodies held at once are bounded across every connection
//! (`ONGI_BODY_MEMORY_MB`): a body's buffer reserves its memory from that budget as it grows,
//! before the bytes are copied in, and holds it until the response is made. So a body holds
//! what it has sent, not what it declared: thousands of connections that declare a megabyte
//! and trickle it hold a few bytes each, and a small call beside them is served. Bodies that
//! have really sent the budget's worth hold that, not gigabytes; the next byte that finds no
//! memory left is answered 503 with `Retry-After`. A body declaring more than the limit is
//! 413 before a byte is read.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    let deadline = reading.deadline;
    let (bytes, _memory) = match tokio::time::timeout(deadline, read_reserved(body, &reading.memory_kib)).await {
        Ok(Ok(read)) => read,
        Ok(Err(Unread::TooLarge)) => return ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response(),
        Ok(Err(Unread::NoMemory)) => {
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
        }
        Ok(Err(Unread::Broken(e))) => {
            return ApiError::InvalidRequest(format!("the body could not be read: {e}")).into_response();
        }
        Err(_) => {
            tracing::info!(path = parts.uri.path(), "request body not received in time");
            return ApiError::RequestTimeout(deadline).into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Why a body was not read.
enum Unread {
    TooLarge,
    NoMemory,
    Broken(String),
}

/// Reads `body` into one buffer whose capacity is reserved from `memory_kib` (KiB permits)
/// before it grows, so what the body holds is what it has sent (rounded up to a power of
/// two, at least 1 KiB, so a growing buffer is copied O(1) times a byte). Each chunk is copied and dropped at once: a chunk may share the
/// connection's read buffer, which a kept chunk would pin.
async fn read_reserved(
    mut body: Body,
    memory_kib: &Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Unread> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Unread::Broken(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else { continue }; // trailers carry nothing we read
        let needed = buffer.len().saturating_add(chunk.len());
        if needed > MAX_BODY_BYTES {
            return Err(Unread::TooLarge);
        }
        if needed > buffer.capacity() {
            let capacity = needed.next_power_of_two().clamp(1024, MAX_BODY_BYTES);
            let reserved_kib = held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
            let more_kib = capacity.div_ceil(1024).saturating_sub(reserved_kib);
            let more = u32::try_from(more_kib)
                .ok()
                .and_then(|kib| memory_kib.clone().try_acquire_many_owned(kib).ok())
                .ok_or(Unread::NoMemory)?;
            match &mut held {
                Some(held) => held.merge(more),
                None => held = Some(more),
            }
            buffer.reserve_exact(capacity - buffer.len());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok((Bytes::from(buffer), held))
}

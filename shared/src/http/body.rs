//! Request bodies are read whole, within a deadline and the size limit, before a request
//! takes a work slot ([`super::admission`]). A client that sends its body slowly (or never
//! finishes it) then holds only its own connection until the deadline, never one of the
//! `ONGI_MAX_IN_FLIGHT` slots that every legitimate call needs.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// Reads the body into memory (at most [`MAX_BODY_BYTES`], within `deadline`), then passes
/// the request on with that buffered body: 413 past the limit, 408 past the deadline.
pub async fn read_body_in_time(State(deadline): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
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

//! Event routes (Eventarc / Pub/Sub push) and batch reprocessing.
//!
//! Not built yet: they answer 501, which Pub/Sub treats as a failure and retries with
//! backoff before dead-lettering, so no event is silently dropped while they are missing.

use axum::response::Response;

use crate::http::error::{ApiError, ErrorBody};

#[utoipa::path(post, path = "/events/storage", tag = "events",
    responses((status = 501, body = ErrorBody)))]
pub async fn storage() -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented("the storage event route (flow A)"))
}

#[utoipa::path(post, path = "/events/features", tag = "events",
    responses((status = 501, body = ErrorBody)))]
pub async fn features() -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented("the features event route (per-photo steps)"))
}

#[utoipa::path(post, path = "/batch/reprocess", tag = "batch",
    responses((status = 501, body = ErrorBody)))]
pub async fn batch_reprocess() -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented("batch reprocessing"))
}

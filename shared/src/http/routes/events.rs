//! Event routes (Eventarc / Pub/Sub push). Batch reprocessing is in [`batch`](super::batch).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::ImageRef;
use crate::events::publish::{FeaturesMessage, publish_json};
use crate::events::storage::StorageEventKind;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;

/// What an event route answers (2xx: handled or deliberately skipped).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOutcome {
    /// `computed`, `cached`, `skipped`, or `rejected` (a malformed event).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn skipped(object: Option<String>, reason: String) -> Response {
    tracing::info!(object = object.as_deref().unwrap_or("-"), reason = %reason, "storage event skipped");
    metrics::counter!("ongi_events_total", "route" => "storage", "outcome" => "skipped").increment(1);
    (
        StatusCode::OK,
        Json(EventOutcome {
            status: "skipped",
            object,
            reason: Some(reason),
        }),
    )
        .into_response()
}

/// Flow A: a GCS upload notification (Eventarc CloudEvent, binary or structured, or a
/// Pub/Sub push of a GCS notification). Computes and caches the photo's features, then
/// publishes to `ongi-features`. A repeated delivery is a cache hit. Deletes, other
/// buckets, non-images and unreadable photos are acknowledged (2xx) and logged; so is a
/// malformed envelope (`status: rejected`, an error log: no retry can fix it, and a 4xx
/// would only be redelivered until the dead-letter policy gives up); a transient failure is
/// a 503 so that the delivery is retried.
#[utoipa::path(post, path = "/events/storage", tag = "events",
    responses((status = 200, body = EventOutcome, description = "Handled, skipped, or a malformed event acknowledged with status rejected"),
              (status = 503, body = ErrorBody)))]
pub async fn storage(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let event = match crate::events::storage::parse(&headers, &body) {
        Ok(event) => event,
        Err(e) => {
            tracing::error!(error = %e, "malformed storage event acknowledged and dropped");
            metrics::counter!("ongi_events_total", "route" => "storage", "outcome" => "malformed").increment(1);
            return Ok((
                StatusCode::OK,
                Json(EventOutcome {
                    status: "rejected",
                    object: None,
                    reason: Some(e.to_string()),
                }),
            )
                .into_response());
        }
    };
    let name = format!("{}/{}", event.bucket, event.object);
    if let StorageEventKind::Other(kind) = &event.kind {
        return Ok(skipped(Some(name), format!("event type {kind} needs no processing")));
    }
    if event.bucket != state.settings.bucket.as_str() {
        return Ok(skipped(
            Some(name),
            format!("bucket {} is not served here", event.bucket),
        ));
    }
    // An empty or generic type says nothing (clients often upload without one): the decoder
    // decides. A definite non-image type is skipped without a download.
    if let Some(ct) = event
        .content_type
        .as_deref()
        .filter(|ct| !ct.is_empty() && !ct.starts_with("image/") && !ct.starts_with("application/octet-stream"))
    {
        return Ok(skipped(Some(name), format!("content type {ct} is not an image")));
    }
    if let Err(e) = ImageRef::parse(&event.object) {
        return Ok(skipped(Some(name), format!("object name refused: {e}")));
    }
    let features = match state
        .features
        .object(&state.settings.bucket, &event.object, event.generation)
        .await
    {
        Ok(f) => f,
        Err(e) if e.transient => {
            return Err(ApiError::Unavailable {
                message: format!("{name}: {e}"),
                retry_after: Duration::from_secs(10),
            });
        }
        Err(e) => return Ok(skipped(Some(name), format!("{}: {}", e.reason, e.detail))),
    };
    let message = FeaturesMessage::new(
        &event.bucket,
        &event.object,
        event.generation,
        features.hash.to_hex(),
        state.features.model_id(),
        features.computed,
    );
    publish_json(state.features_publisher.as_ref(), &message, message.attributes()).await?;
    let status = if features.computed { "computed" } else { "cached" };
    metrics::counter!("ongi_events_total", "route" => "storage", "outcome" => status).increment(1);
    tracing::info!(object = %name, generation = event.generation, envelope = event.envelope, status, "storage event handled");
    Ok((
        StatusCode::OK,
        Json(EventOutcome {
            status,
            object: Some(name),
            reason: None,
        }),
    )
        .into_response())
}

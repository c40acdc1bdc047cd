//! Event routes (Eventarc / Pub/Sub push), thin shells over the per-photo flow
//! ([`crate::photo`]): an upload, and an `ongi-features` announcement. Batch reprocessing is
//! in [`batch`](super::batch).
//!
//! An event route answers 2xx for what no retry can change: a photo handled, an event that
//! needs no processing, an unreadable photo, or a malformed envelope (`status: rejected`, an
//! error log and a counter: a 4xx would only be redelivered until the dead-letter policy
//! gives up). A transient failure is a 503, so that the delivery is retried.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::events::features::parse_push;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::photo::{Arrival, FlowError, admit_upload};

/// What an event route answers (2xx: handled or deliberately skipped).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOutcome {
    /// `computed`, `cached`, `handled`, `skipped`, or `rejected` (a malformed event).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `/events/features`: one `ongi.results.v1` result per function this process serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub results: Option<Value>,
}

impl EventOutcome {
    fn new(status: &'static str, object: Option<String>, reason: Option<String>) -> Self {
        Self {
            status,
            object,
            reason,
            results: None,
        }
    }
}

/// A 200 with `body`, counted under `outcome`.
fn answer(route: &'static str, outcome: &'static str, body: EventOutcome) -> Response {
    metrics::counter!("ongi_events_total", "route" => route, "outcome" => outcome).increment(1);
    (StatusCode::OK, Json(body)).into_response()
}

fn rejected(route: &'static str, why: String) -> Response {
    tracing::error!(route, error = %why, "malformed event acknowledged and dropped");
    answer(route, "malformed", EventOutcome::new("rejected", None, Some(why)))
}

fn skipped(route: &'static str, object: String, why: String) -> Response {
    tracing::info!(route, object = %object, reason = %why, "event skipped");
    answer(route, "skipped", EventOutcome::new("skipped", Some(object), Some(why)))
}

/// A failure of the flow, as the event's answer: 2xx for an unreadable photo, 503 when a
/// retry may help.
fn failed(route: &'static str, object: String, e: FlowError) -> Result<Response, ApiError> {
    match e {
        FlowError::Unreadable(e) => Ok(skipped(route, object, format!("{}: {}", e.reason, e.detail))),
        FlowError::Transient(message) => Err(ApiError::Unavailable {
            message: format!("{object}: {message}"),
            retry_after: Duration::from_secs(10),
        }),
        FlowError::Internal(message) => Err(ApiError::Internal(message)),
    }
}

/// Flow A: a GCS upload notification (Eventarc CloudEvent, binary or structured, or a
/// Pub/Sub push of a GCS notification). Computes and caches the photo's features, then
/// publishes to `ongi-features`. A repeated delivery is a cache hit. Deletes, other
/// buckets, non-images and unreadable photos are acknowledged (2xx) and logged.
#[utoipa::path(post, path = "/events/storage", tag = "events",
    responses((status = 200, body = EventOutcome, description = "Handled, skipped, or a malformed event acknowledged with status rejected"),
              (status = 503, body = ErrorBody)))]
pub async fn storage(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    const ROUTE: &str = "storage";
    let event = match crate::events::storage::parse(&headers, &body) {
        Ok(event) => event,
        Err(e) => return Ok(rejected(ROUTE, e.to_string())),
    };
    let name = format!("{}/{}", event.bucket, event.object);
    let arrival = match admit_upload(&event, &state.settings.bucket) {
        Ok(arrival) => arrival,
        Err(why) => return Ok(skipped(ROUTE, name, why)),
    };
    match state.photo.run(&arrival).await {
        Ok(done) => {
            let status = if done.computed { "computed" } else { "cached" };
            tracing::info!(object = %name, generation = event.generation, envelope = event.envelope, status, "storage event handled");
            Ok(answer(ROUTE, status, EventOutcome::new(status, Some(name), None)))
        }
        Err(e) => failed(ROUTE, name, e),
    }
}

/// The per-photo results of one `ongi-features` message: for each function this process
/// serves (category, quality, score, people), the photo's result, published on
/// `ongi-results` and stored. 200 when handled, or when the message is malformed or the photo
/// unreadable (acknowledged, logged, dropped); 503 when a retry may help.
#[utoipa::path(post, path = "/events/features", tag = "events",
    responses((status = 200, body = EventOutcome, description = "Handled (status handled, with results), or skipped, or a malformed message acknowledged with status rejected"),
              (status = 503, body = ErrorBody)))]
pub async fn features(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    const ROUTE: &str = "features";
    let announced = match parse_push(&body) {
        Ok(m) => m,
        Err(bad) => return Ok(rejected(ROUTE, bad.0)),
    };
    let arrival = Arrival::announced(&announced, &state.functions);
    let name = format!("{}/{}", arrival.photo.bucket, arrival.photo.name);
    match state.photo.run(&arrival).await {
        Ok(done) => {
            let results = done
                .results
                .into_iter()
                .map(|(function, result)| (function.name().to_owned(), result))
                .collect();
            let body = EventOutcome {
                results: Some(Value::Object(results)),
                ..EventOutcome::new("handled", Some(name), None)
            };
            Ok(answer(ROUTE, "handled", body))
        }
        Err(e) => failed(ROUTE, name, e),
    }
}

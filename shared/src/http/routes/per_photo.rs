//! `POST /events/features`: the per-photo steps, fed by the `ongi-features` push
//! subscriptions. For each analysis this process serves (category, quality, score), the
//! photo's result is computed from its cached features
//! ([`per_photo_result`](crate::pipeline::steps::per_photo_result)), stored in the cache next
//! to them, and published to `ongi-results` (schema `ongi.results.v1`, described in
//! [`steps`](crate::pipeline::steps)). People has no per-photo step yet and is skipped.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::domain::{BucketName, ContentHash};
use crate::events::publish::{FEATURES_SCHEMA, FeaturesMessage, publish_json};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::pipeline::FeatureRecord;
use crate::pipeline::steps::{ResultSubject, StepError, per_photo_result, result_entry, results_message};

pub use crate::pipeline::steps::RESULTS_SCHEMA;

#[derive(Deserialize)]
struct Push {
    message: PushMessage,
}

#[derive(Deserialize)]
struct PushMessage {
    #[serde(default)]
    data: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PerPhotoOutcome {
    pub object: String,
    /// One `ongi.results.v1` result per module this process serves.
    #[schema(value_type = Object)]
    pub results: Value,
}

fn malformed(why: String) -> ApiError {
    tracing::warn!(error = %why, "malformed ongi-features message");
    metrics::counter!("ongi_events_total", "route" => "features", "outcome" => "malformed").increment(1);
    ApiError::InvalidRequest(why)
}

fn parse(body: &[u8]) -> Result<FeaturesMessage, ApiError> {
    let push: Push =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not a Pub/Sub push envelope: {e}")))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(push.message.data.trim())
        .map_err(|e| malformed(format!("message data is not base64: {e}")))?;
    let message: FeaturesMessage =
        serde_json::from_slice(&data).map_err(|e| malformed(format!("not an {FEATURES_SCHEMA} message: {e}")))?;
    if message.schema != FEATURES_SCHEMA {
        return Err(malformed(format!(
            "schema {:?}, expected {FEATURES_SCHEMA}",
            message.schema
        )));
    }
    Ok(message)
}

/// The per-photo steps of one `ongi-features` message. 2xx when handled; 400 for a message
/// no retry can fix (Pub/Sub dead-letters it after its retries); 503 when a retry may help.
#[utoipa::path(post, path = "/events/features", tag = "events",
    responses((status = 200, body = PerPhotoOutcome), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn features(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let message = parse(&body)?;
    let bucket = BucketName::parse(&message.bucket).map_err(|_| malformed(format!("bucket {:?}", message.bucket)))?;
    let hash = ContentHash::from_hex(&message.content_hash)
        .ok_or_else(|| malformed("content_hash is not SHA-256 hex".into()))?;
    let name = format!("{}/{}", message.bucket, message.object);
    // The record the message announces; recomputed if it expired meanwhile.
    let ks = state.cache.keyspace().clone();
    let cached = state
        .cache
        .get_many(&[ks.features(&message.model, &hash)])
        .await
        .remove(0);
    let record = match cached.as_deref().map(FeatureRecord::decode) {
        Some(Ok(r)) => r,
        _ => match state
            .features
            .object(&bucket, &message.object, message.generation)
            .await
        {
            Ok(f) => f.record,
            Err(e) if e.transient => {
                return Err(ApiError::Unavailable {
                    message: format!("{name}: {e}"),
                    retry_after: Duration::from_secs(10),
                });
            }
            Err(e) => {
                tracing::warn!(object = %name, error = %e, "per-photo steps skipped: the photo cannot be read");
                return Ok((StatusCode::OK, Json(json!({"object": name, "skipped": e.to_string()}))).into_response());
            }
        },
    };
    let subject = ResultSubject {
        bucket: &message.bucket,
        object: &message.object,
        generation: message.generation,
        content_hash: &message.content_hash,
        model: &message.model,
    };
    let mut results = serde_json::Map::new();
    for module in state.modules.iter().filter(|m| m.has_per_photo_step()) {
        let result = match per_photo_result(&state.analyzer, module, &record).await {
            Ok(Some(result)) => result,
            Ok(None) => continue,
            Err(StepError::Unavailable(message)) => {
                return Err(ApiError::Unavailable {
                    message,
                    retry_after: Duration::from_secs(30),
                });
            }
            Err(StepError::Internal(e)) => return Err(ApiError::Internal(e)),
        };
        let entry =
            result_entry(&ks, module, &message.model, &hash, &result).map_err(|e| ApiError::Internal(e.to_string()))?;
        state.cache.set_many(&[entry]).await;
        let (published, attributes) = results_message(module, &subject, &result);
        publish_json(state.results_publisher.as_ref(), &published, attributes).await?;
        results.insert(module.name().to_owned(), result);
    }
    metrics::counter!("ongi_events_total", "route" => "features", "outcome" => "handled").increment(1);
    Ok((
        StatusCode::OK,
        Json(PerPhotoOutcome {
            object: name,
            results: Value::Object(results),
        }),
    )
        .into_response())
}

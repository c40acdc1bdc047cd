//! `POST /events/features`: the per-photo steps, fed by the `ongi-features` push
//! subscriptions. For each analysis this process serves (category, quality, score,
//! people), the photo's result is computed from its cached features
//! ([`per_photo_result`](crate::pipeline::steps::per_photo_result); people: its faces,
//! detected once and cached for the album call, [`people_result`](crate::pipeline::steps::people_result)),
//! stored in the cache next to them, and published to `ongi-results` (schema
//! `ongi.results.v1`, described in [`steps`](crate::pipeline::steps)).
//!
//! A malformed message is acknowledged (200 `{"status": "rejected", "reason"}`) with an
//! error log and a counter: no retry can fix it, and a 4xx would only make Pub/Sub redeliver
//! it until its dead-letter policy gives up.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::analysis::FeatureRecord;
use crate::events::features::{AnnouncedFeatures, MalformedMessage, parse_push};
use crate::events::publish::publish_json;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::modules::Module;
use crate::pipeline::steps::{
    ResultSubject, StepError, people_result, per_photo_result, result_entry, results_message,
};

pub use crate::pipeline::steps::RESULTS_SCHEMA;

#[derive(Debug, Serialize, ToSchema)]
pub struct PerPhotoOutcome {
    pub object: String,
    /// One `ongi.results.v1` result per module this process serves.
    #[schema(value_type = Object)]
    pub results: Value,
}

/// Acknowledges a malformed message: logged as an error, counted, never redelivered.
fn rejected(MalformedMessage(why): MalformedMessage) -> Response {
    tracing::error!(error = %why, "malformed ongi-features message acknowledged and dropped");
    metrics::counter!("ongi_events_total", "route" => "features", "outcome" => "malformed").increment(1);
    (StatusCode::OK, Json(json!({"status": "rejected", "reason": why}))).into_response()
}

/// The per-photo steps of one `ongi-features` message. 200 when handled, or when the
/// message is malformed (acknowledged, logged, dropped); 503 when a retry may help.
#[utoipa::path(post, path = "/events/features", tag = "events",
    responses((status = 200, body = PerPhotoOutcome, description = "Handled, or a malformed message acknowledged with status rejected"),
              (status = 503, body = ErrorBody)))]
pub async fn features(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let AnnouncedFeatures { message, bucket, hash } = match parse_push(&body) {
        Ok(m) => m,
        Err(bad) => return Ok(rejected(bad)),
    };
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
        let computed = if module == Module::People {
            people_result(&state.faces, &message.bucket, &message.object).await
        } else {
            per_photo_result(&state.analyzer, module, &record).await
        };
        let result = match computed {
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

//! `POST /events/features`: the per-photo steps, fed by the `ongi-features` push
//! subscriptions. For each analysis this process serves (category, quality, score,
//! people), the photo's result is computed from its cached features (people: its faces,
//! detected once and cached for the album call), stored in the cache next to them, and
//! published to `ongi-results` (schema `ongi.results.v1`, below).
//!
//! A malformed message is acknowledged (200 `{"status": "rejected", "reason"}`) with an
//! error log and a counter: no retry can fix it, and a 4xx would only make Pub/Sub redeliver
//! it until its dead-letter policy gives up.
//!
//! `ongi.results.v1` message: `{"schema", "module", "bucket", "object", "generation",
//! "content_hash", "model", "result"}` where `result` is, per module:
//! - `category`: `{"tags": [{"category", "similarity"}]}`, the photo's best base tags above
//!   the floor (at most 3), best first;
//! - `quality`: `{"low_quality", "reasons", "metrics"}` as `quality?detail=true`;
//! - `score`: `{"score"}`, the aesthetic score;
//! - `people`: `{"faces": [{"bbox": [x1, y1, x2, y2], "score", "quality"}]}`, the faces found
//!   (their embeddings stay in the cache, for `POST /api/albums/people`).

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

use crate::analysis::category::TagVector;
use crate::analysis::taxonomy::Taxonomy;
use crate::domain::{BucketName, ContentHash, ImageRef};
use crate::events::publish::{FEATURES_SCHEMA, FeaturesMessage, publish_json};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::modules::Module;
use crate::pipeline::FeatureRecord;

pub const RESULTS_SCHEMA: &str = "ongi.results.v1";
/// Tags reported per photo.
const TAGS_PER_PHOTO: usize = 3;

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

/// A message no retry can fix.
struct Malformed(String);

fn malformed(why: String) -> Malformed {
    Malformed(why)
}

/// Acknowledges a malformed message: logged as an error, counted, never redelivered.
fn rejected(Malformed(why): Malformed) -> Response {
    tracing::error!(error = %why, "malformed ongi-features message acknowledged and dropped");
    metrics::counter!("ongi_events_total", "route" => "features", "outcome" => "malformed").increment(1);
    (StatusCode::OK, Json(json!({"status": "rejected", "reason": why}))).into_response()
}

fn parse(body: &[u8]) -> Result<FeaturesMessage, Malformed> {
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

fn top_tags(record: &FeatureRecord, tags: &[TagVector], floor: f32) -> Value {
    let Some(e) = record.embedding.as_deref() else {
        return json!({"tags": []});
    };
    let mut sims: Vec<(usize, f32)> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| (i, t.vector.iter().zip(e).map(|(a, b)| a * b).sum::<f32>()))
        .filter(|(_, s)| *s >= floor)
        .collect();
    sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let tags: Vec<Value> = sims
        .iter()
        .take(TAGS_PER_PHOTO)
        .map(|(i, s)| json!({"category": tags[*i].name, "similarity": s}))
        .collect();
    json!({ "tags": tags })
}

/// The per-photo steps of one `ongi-features` message. 200 when handled, or when the
/// message is malformed (acknowledged, logged, dropped); 503 when a retry may help.
#[utoipa::path(post, path = "/events/features", tag = "events",
    responses((status = 200, body = PerPhotoOutcome, description = "Handled, or a malformed message acknowledged with status rejected"),
              (status = 503, body = ErrorBody)))]
pub async fn features(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let message = match parse(&body) {
        Ok(m) => m,
        Err(bad) => return Ok(rejected(bad)),
    };
    let Ok(bucket) = BucketName::parse(&message.bucket) else {
        return Ok(rejected(malformed(format!(
            "bucket {:?} is not a bucket name",
            message.bucket
        ))));
    };
    let Some(hash) = ContentHash::from_hex(&message.content_hash) else {
        return Ok(rejected(malformed("content_hash is not SHA-256 hex".into())));
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
    let mut results = serde_json::Map::new();
    for module in state.modules.iter().filter(|m| m.has_per_photo_step()) {
        let result = match module {
            Module::Category => {
                let tags = Taxonomy::builtin().candidates(&[]);
                match state.analyzer.tag_vectors(&tags).await {
                    Ok(vectors) => top_tags(&record, &vectors, state.analyzer.settings().category_floor),
                    Err(e) => {
                        return Err(ApiError::Unavailable {
                            message: format!("categorisation is unavailable: {e}"),
                            retry_after: Duration::from_secs(30),
                        });
                    }
                }
            }
            Module::Quality => {
                let pairs = state.analyzer.quality_pairs().await;
                serde_json::to_value(state.analyzer.assess(&record, pairs.as_deref()))
                    .map_err(|e| ApiError::Internal(e.to_string()))?
            }
            Module::Score => match state.analyzer.aesthetic(&record) {
                Some(score) => json!({ "score": score }),
                None => continue,
            },
            Module::People => {
                if !state.faces.available() {
                    continue;
                }
                let image = ImageRef::parse(&format!("gs://{}/{}", message.bucket, message.object))
                    .map_err(|e| ApiError::Internal(format!("{name}: {e}")))?;
                match state.faces.album(std::slice::from_ref(&image)).await.remove(0) {
                    Ok(faces) => json!({"faces": faces.iter().map(|f| json!({
                        "bbox": f.bbox.map(|v| v.round() as i64), "score": f.score, "quality": f.quality,
                    })).collect::<Vec<_>>()}),
                    Err(e) if e.transient => {
                        return Err(ApiError::Unavailable {
                            message: format!("{name}: {e}"),
                            retry_after: Duration::from_secs(10),
                        });
                    }
                    Err(e) => json!({"faces": [], "error": e.reason}),
                }
            }
            Module::Embedding | Module::Duplicate | Module::Style => continue,
        };
        let value = serde_json::to_vec(&result).map_err(|e| ApiError::Internal(e.to_string()))?;
        state
            .cache
            .set_many(&[(ks.result(module.name(), &message.model, &hash), Bytes::from(value))])
            .await;
        let published = json!({
            "schema": RESULTS_SCHEMA, "module": module.name(), "bucket": message.bucket,
            "object": message.object, "generation": message.generation,
            "content_hash": message.content_hash, "model": message.model, "result": result,
        });
        let attributes = vec![
            ("schema".to_owned(), RESULTS_SCHEMA.to_owned()),
            ("module".to_owned(), module.name().to_owned()),
        ];
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

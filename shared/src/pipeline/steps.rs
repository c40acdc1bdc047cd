//! The per-photo steps of the analyses: one photo's `category`, `quality` or `score` result,
//! computed from its cached features, and its `people` result (its faces). `POST /events/features` (fed by `ongi-features`) and
//! batch reprocessing both run them through here, so they store and publish the same thing.
//!
//! `ongi.results.v1` message: `{"schema", "module", "bucket", "object", "generation",
//! "content_hash", "model", "result"}` where `result` is, per module:
//! - `category`: `{"tags": [{"category", "similarity"}]}`, the photo's best base tags above
//!   the floor (at most 3), best first;
//! - `quality`: `{"low_quality", "reasons", "metrics"}` as `quality?detail=true`;
//! - `score`: `{"score"}`, the aesthetic score;
//! - `people`: `{"faces": [{"bbox": [x1, y1, x2, y2], "score", "quality"}]}`, the faces found
//!   (their embeddings stay in the cache, for `POST /api/albums/people`).

use bytes::Bytes;
use serde_json::{Value, json};

use crate::analysis::FeatureRecord;
use crate::analysis::category::TagVector;
use crate::analysis::taxonomy::Taxonomy;
use crate::cache::{CacheKey, Keyspace};
use crate::domain::ContentHash;
use crate::modules::Module;
use crate::pipeline::analyzer::Analyzer;

pub const RESULTS_SCHEMA: &str = "ongi.results.v1";
/// Tags reported per photo.
const TAGS_PER_PHOTO: usize = 3;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    /// A model the step needs does not answer: a retry may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug: the result could not be serialised.
    #[error("{0}")]
    Internal(String),
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

/// `module`'s result for one photo. `None`: the module has no per-photo step, or none for
/// this photo (`score` without an aesthetic head or without an embedding).
pub async fn per_photo_result(
    analyzer: &Analyzer,
    module: Module,
    record: &FeatureRecord,
) -> Result<Option<Value>, StepError> {
    Ok(Some(match module {
        Module::Category => {
            let tags = Taxonomy::builtin().candidates(&[]);
            let vectors = analyzer
                .tag_vectors(&tags)
                .await
                .map_err(|e| StepError::Unavailable(format!("categorisation is unavailable: {e}")))?;
            top_tags(record, &vectors, analyzer.settings().category_floor)
        }
        Module::Quality => {
            let pairs = analyzer.quality_pairs().await;
            serde_json::to_value(analyzer.assess(record, pairs.as_deref()))
                .map_err(|e| StepError::Internal(e.to_string()))?
        }
        Module::Score => match analyzer.aesthetic(record) {
            Some(score) => json!({ "score": score }),
            None => return Ok(None),
        },
        // No per-photo step (yet).
        _ => return Ok(None),
    }))
}

/// The people step: the photo's faces, detected (or read from the face cache) by the same
/// [`FaceService`](super::faces::FaceService) the album call uses, so the album call finds
/// them cached. `None` when this process has no face models.
pub async fn people_result(
    faces: &super::faces::FaceService,
    bucket: &str,
    object: &str,
) -> Result<Option<Value>, StepError> {
    if !faces.available() {
        return Ok(None);
    }
    let image = crate::domain::ImageRef::parse(&format!("gs://{bucket}/{object}"))
        .map_err(|e| StepError::Internal(format!("{bucket}/{object}: {e}")))?;
    Ok(Some(match faces.album(std::slice::from_ref(&image)).await.remove(0) {
        Ok(found) => json!({"faces": found.iter().map(|f| json!({
            "bbox": f.bbox.map(|v| v.round() as i64), "score": f.score, "quality": f.quality,
        })).collect::<Vec<_>>()}),
        Err(e) if e.transient => return Err(StepError::Unavailable(format!("{bucket}/{object}: {e}"))),
        Err(e) => json!({"faces": [], "error": e.reason}),
    }))
}

/// The cache entry that records `result`: what makes the photo current for `module`.
pub fn result_entry(
    keyspace: &Keyspace,
    module: Module,
    model: &str,
    hash: &ContentHash,
    result: &Value,
) -> Result<(CacheKey, Bytes), StepError> {
    let value = serde_json::to_vec(result).map_err(|e| StepError::Internal(e.to_string()))?;
    Ok((keyspace.result(module.name(), model, hash), Bytes::from(value)))
}

/// Which object a result belongs to, for its `ongi.results.v1` message.
#[derive(Debug, Clone, Copy)]
pub struct ResultSubject<'a> {
    pub bucket: &'a str,
    pub object: &'a str,
    pub generation: i64,
    /// SHA-256 hex of the photo's bytes.
    pub content_hash: &'a str,
    pub model: &'a str,
}

/// The `ongi.results.v1` message of one result, and its attributes.
pub fn results_message(module: Module, subject: &ResultSubject<'_>, result: &Value) -> (Value, Vec<(String, String)>) {
    let message = json!({
        "schema": RESULTS_SCHEMA, "module": module.name(), "bucket": subject.bucket,
        "object": subject.object, "generation": subject.generation,
        "content_hash": subject.content_hash, "model": subject.model, "result": result,
    });
    let attributes = vec![
        ("schema".to_owned(), RESULTS_SCHEMA.to_owned()),
        ("module".to_owned(), module.name().to_owned()),
    ];
    (message, attributes)
}

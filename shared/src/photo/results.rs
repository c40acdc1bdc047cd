//! One function's per-photo result, as `ongi.results.v1` carries it
//! ([`ResultsMessage`](crate::events::publish::ResultsMessage) documents each shape): the
//! decisions are [`crate::analysis`]'s; this turns them into the message's JSON.

use serde_json::{Value, json};

use super::{FlowError, PhotoObject};
use crate::analysis::FeatureRecord;
use crate::analysis::category::{TAGS_PER_PHOTO, top_tags};
use crate::analysis::taxonomy::Taxonomy;
use crate::domain::ImageRef;
use crate::functions::Function;
use crate::pipeline::analysis_models::AnalysisModels;
use crate::pipeline::faces::FaceService;

/// `function`'s result for one photo. `None`: the function has no per-photo result, or none
/// for this photo (see [`PhotoOutcome::without_result`](super::PhotoOutcome::without_result)).
pub(super) async fn result_of(
    analysis_models: &AnalysisModels,
    faces: &FaceService,
    function: Function,
    photo: &PhotoObject,
    record: &FeatureRecord,
) -> Result<Option<Value>, FlowError> {
    Ok(match function {
        Function::Category => {
            // Pixel-only features (no image encoder) have no tags to offer.
            let Some(embedding) = record.embedding.as_deref() else {
                return Ok(Some(json!({"tags": []})));
            };
            let tags = Taxonomy::builtin().candidates(&[]);
            let vectors = analysis_models
                .tag_vectors(&tags)
                .await
                .map_err(|e| FlowError::Transient(format!("categorisation is unavailable: {e}")))?;
            let best = top_tags(
                embedding,
                &vectors,
                analysis_models.settings().category_floor,
                TAGS_PER_PHOTO,
            );
            let tags: Vec<Value> = best
                .iter()
                .map(|(i, s)| json!({"category": vectors[*i].name, "similarity": s}))
                .collect();
            Some(json!({ "tags": tags }))
        }
        Function::Quality => {
            let pairs = analysis_models.quality_pairs().await;
            Some(
                serde_json::to_value(analysis_models.assess(record, pairs.as_deref()))
                    .map_err(|e| FlowError::Internal(e.to_string()))?,
            )
        }
        Function::Score => analysis_models.aesthetic(record).map(|score| json!({ "score": score })),
        Function::People => people(faces, photo).await?,
        Function::Embedding | Function::Duplicate | Function::Style => None,
    })
}

/// The photo's faces, detected (or read from the face cache) by the same [`FaceService`] the
/// album call uses, so the album call finds them cached. `None` without the face models.
async fn people(faces: &FaceService, photo: &PhotoObject) -> Result<Option<Value>, FlowError> {
    if !faces.available() {
        return Ok(None);
    }
    let name = format!("{}/{}", photo.bucket, photo.name);
    let image = ImageRef::parse(&format!("gs://{name}")).map_err(|e| FlowError::Internal(format!("{name}: {e}")))?;
    Ok(Some(match faces.album(std::slice::from_ref(&image)).await.remove(0) {
        Ok(found) => json!({"faces": found.iter().map(|f| json!({
            "bbox": f.bbox.map(|v| v.round() as i64), "score": f.score, "quality": f.quality,
        })).collect::<Vec<_>>()}),
        Err(e) if e.transient => return Err(FlowError::Transient(format!("{name}: {e}"))),
        Err(e) => json!({"faces": [], "error": e.reason}),
    }))
}

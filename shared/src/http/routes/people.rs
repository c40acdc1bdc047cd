//! `POST /api/albums/people`: who is in the album. Faces per photo come from the face cache
//! (computed on a miss: detection, five-point alignment, SFace embedding); clustering is
//! density-based on cosine distance (`analysis::people`). The answer has the anchor's shape
//! with integer boxes; every cluster lists a photo once, clusters are sorted by size, and the
//! representative is the best face (size, detection score, sharpness, frontal pose), not
//! the first one found. `?detail=true` adds every face with its box and scores.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;

use crate::album::{Person, persons};
use crate::domain::ImageRef;
use crate::http::envelope::{Envelope, InvalidImage, success};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::request::{ImagesRequest, validate_refs};
use crate::http::routes::analyses::DetailQuery;
use crate::http::state::AppState;
use crate::pipeline::face_record::StoredFace;

#[utoipa::path(post, path = "/api/albums/people", tag = "albums", request_body = ImagesRequest, params(DetailQuery),
    responses((status = 201, body = Envelope<Vec<Person>>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn people(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DetailQuery>,
    ApiJson(req): ApiJson<ImagesRequest>,
) -> Result<Response, ApiError> {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    if !state.faces.available() {
        return Err(ApiError::Unavailable {
            message: "the face models are not loaded (face-detect and face-embed files in ONGI_MODEL_DIR)".into(),
            retry_after: Duration::from_secs(30),
        });
    }
    // One photo per distinct reference.
    let mut seen = HashSet::new();
    let photos: Vec<ImageRef> = refs.iter().filter(|r| seen.insert(*r)).cloned().collect();
    let results = state.faces.album(&photos).await;
    let mut invalid = Vec::new();
    let mut faces: Vec<(usize, StoredFace)> = Vec::new();
    for (p, result) in results.into_iter().enumerate() {
        match result {
            Ok(found) => faces.extend(found.into_iter().map(|f| (p, f))),
            Err(e) if e.transient => {
                return Err(ApiError::Unavailable {
                    message: format!("{}: {e}", photos[p]),
                    retry_after: Duration::from_secs(5),
                });
            }
            Err(e) => invalid.push(InvalidImage {
                image: photos[p].to_string(),
                reason: e.reason,
                detail: Some(e.detail),
            }),
        }
    }
    let data = persons(&faces, |p| photos[p].to_string(), q.detail);
    Ok(success(data, invalid))
}

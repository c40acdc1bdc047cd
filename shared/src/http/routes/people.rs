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
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::ImageRef;
use crate::http::envelope::{InvalidImage, success};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::request::{ImagesRequest, validate_refs};
use crate::http::routes::analyses::DetailQuery;
use crate::http::state::AppState;
use crate::pipeline::face_record::StoredFace;
use crate::pipeline::faces::cluster_people;

#[derive(Debug, Serialize, ToSchema)]
pub struct RepresentativeFace {
    pub image: String,
    /// `[x1, y1, x2, y2]` in the photo's pixels, the right way up.
    pub bbox: [i32; 4],
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FaceDetail {
    pub image: String,
    pub bbox: [i32; 4],
    /// Detector confidence.
    pub score: f32,
    /// How good a representative it is (0–1): size, confidence, sharpness, pose.
    pub quality: f32,
    pub sharpness: f32,
    pub frontalness: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Person {
    /// The photos this person is in, each once.
    pub images: Vec<String>,
    pub representative_face: RepresentativeFace,
    /// With `?detail=true`: every face of the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces: Option<Vec<FaceDetail>>,
}

#[utoipa::path(post, path = "/api/albums/people", tag = "albums", request_body = ImagesRequest, params(DetailQuery),
    responses((status = 201, body = Vec<Person>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
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
                reason: e.reason.to_owned(),
                detail: Some(e.detail),
            }),
        }
    }
    let data = persons(&faces, |p| photos[p].to_string(), q.detail);
    Ok(success(data, invalid))
}

/// The anchor's answer for an album's faces, each `(photo index, face)`: the clusters of
/// [`cluster_people`], each with its photos and representative face, and every face's
/// detail when asked. `photo(p)` names photo `p`. (The people route and `ongi analyze` share it.)
pub fn persons(faces: &[(usize, StoredFace)], photo: impl Fn(usize) -> String, detail: bool) -> Vec<Person> {
    let name = |i: usize| photo(faces[i].0);
    cluster_people(faces)
        .iter()
        .map(|c| Person {
            images: c.faces.iter().map(|&i| name(i)).collect(),
            representative_face: RepresentativeFace {
                image: name(c.representative),
                bbox: faces[c.representative].1.pixel_box(),
            },
            faces: detail.then(|| {
                c.faces
                    .iter()
                    .map(|&i| {
                        let f = &faces[i].1;
                        FaceDetail {
                            image: name(i),
                            bbox: f.pixel_box(),
                            score: f.score,
                            quality: f.quality,
                            sharpness: f.sharpness,
                            frontalness: f.frontalness,
                        }
                    })
                    .collect()
            }),
        })
        .collect()
}

//! `POST /api/albums/similar`: the album's photos most like one of them, by CLIP cosine
//! similarity ([`crate::analysis::search::similar_to`]). The photo itself is left out; other
//! names for the same bytes come first and are marked `exact_duplicate`.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::analyses::{model_unavailable, with_embeddings};
use super::search::result_limit;
use crate::analysis::search::similar_to;
use crate::http::album::split;
use crate::http::envelope::{Envelope, success};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::request::{ImageReference, validate_ref, validate_refs};
use crate::http::state::AppState;
use crate::model::loaded::PIXELS_ONLY;

/// `{"images": [ref, …], "image": ref, "limit": n}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    /// The album: object names in the uploads bucket, or `gs://bucket/object`.
    #[schema(value_type = Vec<ImageReference>, min_items = 1, max_items = 1000)]
    pub images: Vec<String>,
    /// The photo to compare with: one of `images`, or a photo read with them.
    #[schema(value_type = ImageReference)]
    pub image: String,
    /// How many photos to answer, 1–1000; default 20.
    #[serde(default, deserialize_with = "crate::http::extract::optional_integer")]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One photo of the album and how like the asked-about photo it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarHit {
    pub image: String,
    /// Cosine similarity of the two CLIP embeddings, in [-1, 1].
    pub similarity: f32,
    /// The same bytes as the asked-about photo, under another name.
    pub exact_duplicate: bool,
}

/// What `POST /api/albums/similar` answers in `data`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarAnswer {
    pub model: String,
    /// The asked-about photo, as sent.
    pub image: String,
    /// The album's other photos, most similar first.
    pub results: Vec<SimilarHit>,
}

/// The album's photos most similar to one of them.
#[utoipa::path(post, path = "/api/albums/similar", tag = "search", request_body = SimilarRequest,
    responses((status = 201, body = Envelope<SimilarAnswer>, description = "photos that cannot be read or have no CLIP embedding go to invalid_images; when the asked-about photo is one of them, results is empty"),
              (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn similar(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SimilarRequest>,
) -> Result<Response, ApiError> {
    let bucket = &state.settings.bucket;
    let mut refs = validate_refs("images", &req.images, bucket)?;
    let target = validate_ref("image", &req.image, bucket)?;
    // A photo compared with an album it is not in is read with it, and is not in its results.
    if !refs.contains(&target) {
        refs.push(target.clone());
    }
    let limit = result_limit(req.limit)?;
    // Without the image encoder no photo has a vector: say so before reading any.
    if state.features.model_id() == PIXELS_ONLY {
        return Err(model_unavailable(
            "finding similar photos",
            "the CLIP image encoder is not loaded",
        ));
    }
    let album = with_embeddings(split(&refs, state.features.album(&refs).await)?);
    // The asked-about photo cannot be read or has no embedding: nothing to compare with,
    // and invalid_images says why, as for any photo of an album.
    let Some(at) = album.photos.iter().position(|(r, _)| *r == target) else {
        let data = SimilarAnswer {
            model: state.features.model_id().to_owned(),
            image: req.image,
            results: Vec::new(),
        };
        return Ok(success(data, album.invalid));
    };
    let embeddings: Vec<&[f32]> = album
        .photos
        .iter()
        .map(|(_, f)| f.record.embedding.as_deref().unwrap_or_default())
        .collect();
    let hash = album.photos[at].1.hash;
    let copies: Vec<bool> = album.photos.iter().map(|(_, f)| f.hash == hash).collect();
    let results = similar_to(at, &embeddings, &copies, limit)
        .into_iter()
        .map(|(i, similarity)| SimilarHit {
            image: album.photos[i].0.to_string(),
            similarity,
            exact_duplicate: copies[i],
        })
        .collect();
    let data = SimilarAnswer {
        model: state.features.model_id().to_owned(),
        image: req.image,
        results,
    };
    Ok(success(data, album.invalid))
}

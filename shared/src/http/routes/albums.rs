//! The album routes of DESIGN.md "HTTP contract".
//!
//! Each handler validates its request fully (so callers learn about bad input now), then
//! answers 501 until its module lands: no invented results.

use axum::extract::{Path, State};
use axum::response::Response;

use crate::domain::ImageRef;
use crate::http::album::split;
use crate::http::envelope::success;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::request::{ImagesRequest, StyleRequest, validate_ref, validate_refs};
use crate::http::state::AppState;

type ApiResult = Result<Response, ApiError>;

/// What `POST /api/albums/embedding` answers in `data`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EmbeddingSummary {
    /// Photos whose features this call computed.
    pub computed: usize,
    /// Photos whose features were already cached.
    pub cached: usize,
    /// The model id the features belong to (`pixels-only` without a CLIP model).
    pub model: String,
}

/// Computes and caches every photo's features (CLIP embedding, pHash, blur, exposure).
#[utoipa::path(post, path = "/api/albums/embedding", tag = "albums", request_body = ImagesRequest,
    responses((status = 201, body = EmbeddingSummary, description = "Features cached; unreadable photos in invalid_images"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn embedding(State(state): State<AppState>, ApiJson(req): ApiJson<ImagesRequest>) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    let results = state.features.album(&refs).await;
    let album = split(&refs, results)?;
    // Counted per distinct photo: a reference listed twice is one photo.
    let distinct: std::collections::HashMap<&ImageRef, bool> =
        album.photos.iter().map(|(r, f)| (r, f.computed)).collect();
    let computed = distinct.values().filter(|c| **c).count();
    let summary = EmbeddingSummary {
        computed,
        cached: distinct.len() - computed,
        model: state.features.model_id().to_owned(),
    };
    Ok(success(summary, album.invalid))
}

#[utoipa::path(post, path = "/api/albums/style", tag = "style", request_body = StyleRequest,
    responses((status = 202, description = "{job_id, status}"),
              (status = 400, body = ErrorBody), (status = 501, body = ErrorBody)))]
pub async fn style_submit(State(state): State<AppState>, ApiJson(req): ApiJson<StyleRequest>) -> ApiResult {
    validate_ref("image", &req.image, &state.settings.bucket)?;
    if req.style.trim().is_empty() {
        return Err(ApiError::InvalidRequest(
            "style is empty: name a preset or describe a style".into(),
        ));
    }
    Err(ApiError::NotImplemented("the style module"))
}

#[utoipa::path(get, path = "/api/albums/style/{job_id}", tag = "style",
    params(("job_id" = String, Path, description = "The id returned by POST /api/albums/style")),
    responses((status = 200, description = "{status, result_url?, prompt?, error?}"),
              (status = 501, body = ErrorBody)))]
pub async fn style_status(Path(_job_id): Path<String>) -> ApiResult {
    Err(ApiError::NotImplemented("the style module"))
}

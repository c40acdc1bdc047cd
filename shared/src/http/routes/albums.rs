//! The album routes of DESIGN.md "HTTP contract".
//!
//! `POST /api/albums/embedding`; the analyses are in `analyses`, people and style in their own files.

use axum::extract::State;
use axum::response::Response;

use crate::http::album::split;
use crate::http::envelope::success;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::request::{ImagesRequest, validate_refs};
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
    // Counted per distinct photo (`split` lists each once).
    let computed = album.photos.iter().filter(|(_, f)| f.computed).count();
    let summary = EmbeddingSummary {
        computed,
        cached: album.photos.len() - computed,
        model: state.features.model_id().to_owned(),
    };
    Ok(success(summary, album.invalid))
}

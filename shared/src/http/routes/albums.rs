//! The album routes (docs/api.md).
//!
//! `POST /api/albums/embedding`; the analyses are in `analyses`, people and style in their own files.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::album::split;
use crate::http::envelope::{Envelope, success};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::request::{ImagesRequest, validate_refs};
use crate::http::state::AppState;

use super::search::{Vector, VectorEncoding};

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
    /// With `?include=embedding`: every readable photo's CLIP embedding (unit length), in
    /// the order the photos were first listed; `null` for a photo computed without CLIP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<Vec<PhotoEmbedding>>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PhotoEmbedding {
    pub image: String,
    pub embedding: Option<Vector>,
}

/// What else to return besides the counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    /// The counts only.
    #[default]
    None,
    /// Each photo's CLIP embedding too.
    Embedding,
}

/// `?include=embedding&encoding=json|base64`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmbeddingQuery {
    #[serde(default)]
    #[param(value_type = Option<Include>)]
    pub include: Include,
    /// How the vectors are written (with `include=embedding`): a JSON array, or base64 of
    /// little-endian `f32`s.
    #[serde(default)]
    #[param(value_type = Option<VectorEncoding>)]
    pub encoding: VectorEncoding,
}

/// Computes and caches every photo's features (CLIP embedding, pHash, blur, exposure); with
/// `?include=embedding`, returns the embeddings too.
#[utoipa::path(post, path = "/api/albums/embedding", tag = "albums", request_body = ImagesRequest, params(EmbeddingQuery),
    responses((status = 201, body = Envelope<EmbeddingSummary>, description = "Features cached; unreadable photos in invalid_images"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn embedding(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EmbeddingQuery>,
    ApiJson(req): ApiJson<ImagesRequest>,
) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    let results = state.features.album(&refs).await;
    let album = split(&refs, results)?;
    // Counted per distinct photo (`split` lists each once).
    let computed = album.photos.iter().filter(|(_, f)| f.computed).count();
    let embeddings = (q.include == Include::Embedding).then(|| {
        album
            .photos
            .iter()
            .map(|(r, f)| PhotoEmbedding {
                image: r.to_string(),
                embedding: f.record.embedding.as_deref().map(|e| Vector::encode(e, q.encoding)),
            })
            .collect()
    });
    let summary = EmbeddingSummary {
        computed,
        cached: album.photos.len() - computed,
        model: state.features.model_id().to_owned(),
        embeddings,
    };
    Ok(success(summary, album.invalid))
}

//! The album analyses (docs/api.md): categories, duplicates, quality, score. Each reads the
//! album's features (one cache round trip; what is missing is computed), reports unreadable
//! photos in `invalid_images`, and answers the anchor's response shape; `?detail=true`
//! (duplicates, quality, score) returns the richer objects.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::album::{Album, CategoryGroup, DuplicateGroup, QualityDetail, ScoreMembers, ScoredCategory};
use crate::domain::{ImageRef, Reason};
use crate::http::album::{AlbumFeatures, split};
use crate::http::envelope::{Envelope, success};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::request::{
    CategoriesRequest, ImagesRequest, ScoreRequest, validate_concepts, validate_refs, validate_score,
};
use crate::http::state::AppState;

type ApiResult = Result<Response, ApiError>;

/// One item of `quality`'s answer, as the document states it: a low-quality photo's
/// reference, or with `?detail=true` one photo's verdict. Never built: the handler answers
/// one list or the other; this names both for the OpenAPI document.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum QualityItem {
    Image(String),
    Detail(QualityDetail),
}

/// One item of `duplicates`' answer, as the document states it: a group's references,
/// keeper first, or with `?detail=true` the group with each member's tier and distances.
/// Never built, like [`QualityItem`].
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum DuplicateItem {
    Images(Vec<String>),
    Detail(DuplicateGroup),
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// `true` (or `1`) for the richer answer; `false` or `0` for the plain one.
    #[serde(default, deserialize_with = "crate::http::extract::flag")]
    #[param(value_type = Option<bool>)]
    pub detail: bool,
}

async fn album(state: &AppState, refs: &[ImageRef]) -> Result<AlbumFeatures, ApiError> {
    let results = state.features.album(refs).await;
    split(refs, results)
}

pub(super) fn model_unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable {
        message: format!("{what} is unavailable: {e}"),
        retry_after: Duration::from_secs(30),
    }
}

/// Photos without an embedding (computed without CLIP) cannot be categorised or scored.
pub(super) fn with_embeddings(album: AlbumFeatures) -> AlbumFeatures {
    let AlbumFeatures { photos, mut invalid } = album;
    let mut kept = Vec::new();
    for (r, f) in photos {
        if f.record.embedding.is_some() {
            kept.push((r, f));
        } else {
            invalid.push(crate::http::envelope::InvalidImage {
                image: r.to_string(),
                reason: Reason::NoEmbedding,
                detail: Some("its features were computed without a CLIP model".into()),
            });
        }
    }
    AlbumFeatures { photos: kept, invalid }
}

// ------------------------------------------------------------------------------ categories

/// Zero-shot categories of the album's photos.
#[utoipa::path(post, path = "/api/albums/categories", tag = "albums", request_body = CategoriesRequest,
    responses((status = 201, body = Envelope<Vec<CategoryGroup>>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn categories(State(state): State<AppState>, ApiJson(req): ApiJson<CategoriesRequest>) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    validate_concepts(&req.concepts)?;
    let tags = state
        .analysis_models
        .category_tags(&req.concepts)
        .await
        .map_err(|e| model_unavailable("categorisation", e))?;
    let features = with_embeddings(album(&state, &refs).await?);
    let album = Album::new(&state.analysis_models, &features.photos);
    let data: Vec<CategoryGroup> = album.category_groups(&album.categories(&tags));
    Ok(success(data, features.invalid))
}

// ------------------------------------------------------------------------------ quality

/// The low-quality photos (`[ref]`), or with `?detail=true` every photo's verdict, reasons and metrics.
#[utoipa::path(post, path = "/api/albums/quality", tag = "albums", request_body = ImagesRequest, params(DetailQuery),
    responses((status = 201, body = Envelope<Vec<QualityItem>>, description = "low-quality photos; with detail=true, every photo's QualityDetail"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn quality(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DetailQuery>,
    ApiJson(req): ApiJson<ImagesRequest>,
) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    let features = album(&state, &refs).await?;
    let album = Album::new(&state.analysis_models, &features.photos);
    let details: Vec<QualityDetail> = album.quality_details(&album.verdicts().await);
    if q.detail {
        return Ok(success(details, features.invalid));
    }
    let low: Vec<String> = details.into_iter().filter(|d| d.low_quality).map(|d| d.image).collect();
    Ok(success(low, features.invalid))
}

// ------------------------------------------------------------------------------ duplicates

/// Duplicate groups `[[ref, …]]` (the keeper first), or with `?detail=true` each group's
/// keeper, members, tier and evidence.
#[utoipa::path(post, path = "/api/albums/duplicates", tag = "albums", request_body = ImagesRequest, params(DetailQuery),
    responses((status = 201, body = Envelope<Vec<DuplicateItem>>, description = "groups of 2+, keeper first; with detail=true, each a DuplicateGroup"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn duplicates(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DetailQuery>,
    ApiJson(req): ApiJson<ImagesRequest>,
) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    let features = album(&state, &refs).await?;
    let album = Album::new(&state.analysis_models, &features.photos);
    let groups = album.duplicate_groups(&album.verdicts().await);
    if q.detail {
        let data: Vec<DuplicateGroup> = album.duplicate_details(&groups);
        return Ok(success(data, features.invalid));
    }
    Ok(success(album.duplicate_lists(&groups), features.invalid))
}

// ------------------------------------------------------------------------------ score

/// Aesthetic scores per category, in input order; `?detail=true` adds highlights.
#[utoipa::path(post, path = "/api/albums/score", tag = "albums", request_body = ScoreRequest, params(DetailQuery),
    responses((status = 201, body = Envelope<Vec<ScoredCategory>>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn score(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DetailQuery>,
    ApiJson(req): ApiJson<ScoreRequest>,
) -> ApiResult {
    let categories = validate_score(&req, &state.settings.bucket)?;
    if state.analysis_models.models().aesthetic.is_none() {
        return Err(model_unavailable(
            "scoring",
            format_args!(
                "this deployment runs without the aesthetic head ({}), which scores and highlights need; \
                 `ongi models fetch` installs it in the model folder (docs/models.md)",
                crate::model::aesthetic::AESTHETIC_FILE
            ),
        ));
    }
    let all: Vec<ImageRef> = categories.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    let features = with_embeddings(album(&state, &all).await?);
    let album = Album::new(&state.analysis_models, &features.photos);
    let index: HashMap<&ImageRef, usize> = features.photos.iter().enumerate().map(|(i, (r, _))| (r, i)).collect();
    let members: Vec<(String, ScoreMembers)> = categories
        .iter()
        .map(|(category, refs)| {
            let members = refs
                .iter()
                .filter_map(|r| Some((r.to_string(), *index.get(r)?)))
                .collect();
            (category.clone(), members)
        })
        .collect();
    // Highlights leave out low-quality photos and non-keeper duplicates of the whole album.
    let eligible = if q.detail {
        let verdicts = album.verdicts().await;
        let groups = album.duplicate_groups(&verdicts);
        Some(album.highlight_eligible(&verdicts, &groups))
    } else {
        None
    };
    let data: Vec<ScoredCategory> = album.scores(&members, eligible.as_deref());
    Ok(success(data, features.invalid))
}

//! The album analyses of DESIGN.md: categories, duplicates, quality, score. Each reads the
//! album's features (one cache round trip; what is missing is computed), reports unreadable
//! photos in `invalid_images`, and answers the anchor's response shape; `?detail=true`
//! (duplicates, quality, score) returns the richer objects.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::analysis::duplicate::{Member, Tier};
use crate::analysis::quality::{QualityMetrics, QualityVerdict};
use crate::analysis::score::{highlight_eligible, highlights as best_highlights};
use crate::domain::ImageRef;
use crate::http::album::{AlbumFeatures, split};
use crate::http::envelope::success;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::request::{
    CategoriesRequest, ImagesRequest, ScoreRequest, validate_concepts, validate_refs, validate_score,
};
use crate::http::state::AppState;
use crate::pipeline::Features;

type ApiResult = Result<Response, ApiError>;

#[derive(Debug, Default, Deserialize, IntoParams)]
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

fn model_unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable {
        message: format!("{what} is unavailable: {e}"),
        retry_after: Duration::from_secs(30),
    }
}

/// Photos without an embedding (computed without CLIP) cannot be categorised or scored.
fn with_embeddings(album: AlbumFeatures) -> AlbumFeatures {
    let AlbumFeatures { photos, mut invalid } = album;
    let mut kept = Vec::new();
    for (r, f) in photos {
        if f.record.embedding.is_some() {
            kept.push((r, f));
        } else {
            invalid.push(crate::http::envelope::InvalidImage {
                image: r.to_string(),
                reason: "no_embedding".into(),
                detail: Some("its features were computed without a CLIP model".into()),
            });
        }
    }
    AlbumFeatures { photos: kept, invalid }
}

/// The album's photos by reference (`split` has already listed each photo once).
fn distinct(photos: &[(ImageRef, Features)]) -> Vec<&(ImageRef, Features)> {
    photos.iter().collect()
}

// ------------------------------------------------------------------------------ categories

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryGroup {
    /// The tag's display name (≤ 20 characters), or `기타` for photos that fit no tag.
    pub category: String,
    pub images: Vec<String>,
}

/// Zero-shot categories of the album's photos.
#[utoipa::path(post, path = "/api/albums/categories", tag = "albums", request_body = CategoriesRequest,
    responses((status = 201, body = Vec<CategoryGroup>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn categories(State(state): State<AppState>, ApiJson(req): ApiJson<CategoriesRequest>) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    validate_concepts(&req.concepts)?;
    let tags = state
        .analyzer
        .category_tags(&req.concepts)
        .await
        .map_err(|e| model_unavailable("categorisation", e))?;
    let album = with_embeddings(album(&state, &refs).await?);
    let photos = distinct(&album.photos);
    let embeddings: Vec<&[f32]> = photos
        .iter()
        .filter_map(|(_, f)| f.record.embedding.as_deref())
        .collect();
    let data: Vec<CategoryGroup> = tags
        .assign(&embeddings)
        .into_iter()
        .map(|(category, members)| CategoryGroup {
            category,
            images: members.into_iter().map(|i| photos[i].0.to_string()).collect(),
        })
        .collect();
    Ok(success(data, album.invalid))
}

// ------------------------------------------------------------------------------ quality

#[derive(Debug, Serialize, ToSchema)]
pub struct QualityDetail {
    pub image: String,
    pub low_quality: bool,
    /// `blurry`, `underexposed`, `overexposed`, `looks_blurry`, `looks_bad`.
    pub reasons: Vec<&'static str>,
    pub metrics: QualityMetrics,
}

async fn verdicts(state: &AppState, photos: &[&(ImageRef, Features)]) -> Vec<QualityVerdict> {
    state.analyzer.verdicts(photos.iter().map(|(_, f)| &f.record)).await
}

/// The low-quality photos (`[ref]`), or with `?detail=true` every photo's verdict, reasons and metrics.
#[utoipa::path(post, path = "/api/albums/quality", tag = "albums", request_body = ImagesRequest, params(DetailQuery),
    responses((status = 201, body = Vec<String>, description = "low-quality photos; with detail=true, [QualityDetail]"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn quality(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DetailQuery>,
    ApiJson(req): ApiJson<ImagesRequest>,
) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    let album = album(&state, &refs).await?;
    let photos = distinct(&album.photos);
    let verdicts = verdicts(&state, &photos).await;
    if q.detail {
        let data: Vec<QualityDetail> = photos
            .iter()
            .zip(verdicts)
            .map(|((r, _), v)| QualityDetail {
                image: r.to_string(),
                low_quality: v.low_quality,
                reasons: v.reasons,
                metrics: v.metrics,
            })
            .collect();
        return Ok(success(data, album.invalid));
    }
    let low: Vec<String> = photos
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| v.low_quality)
        .map(|((r, _), _)| r.to_string())
        .collect();
    Ok(success(low, album.invalid))
}

// ------------------------------------------------------------------------------ duplicates

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateMember {
    pub image: String,
    /// `exact` (same bytes), `near` (pHash within 10 bits), `similar` (CLIP cosine).
    pub tier: Tier,
    /// pHash Hamming distance to the keeper.
    pub hamming: u32,
    /// CLIP cosine with the keeper, when both have embeddings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateGroup {
    /// The photo to keep: the best of the group by quality, aesthetic score, sharpness, resolution.
    pub keeper: String,
    pub duplicates: Vec<DuplicateMember>,
}

/// Groups every photo of `photos` into duplicate groups around their keepers.
fn duplicate_groups(
    state: &AppState,
    photos: &[&(ImageRef, Features)],
    verdicts: &[QualityVerdict],
) -> Vec<crate::analysis::duplicate::Group> {
    state
        .analyzer
        .duplicate_groups(photos.iter().map(|(_, f)| (&f.hash, &f.record)), verdicts)
}

/// Duplicate groups `[[ref, …]]` (the keeper first), or with `?detail=true` each group's
/// keeper, members, tier and evidence.
#[utoipa::path(post, path = "/api/albums/duplicates", tag = "albums", request_body = ImagesRequest, params(DetailQuery),
    responses((status = 201, body = Vec<Vec<String>>, description = "groups of 2+, keeper first; with detail=true, [DuplicateGroup]"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn duplicates(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DetailQuery>,
    ApiJson(req): ApiJson<ImagesRequest>,
) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    let album = album(&state, &refs).await?;
    let photos = distinct(&album.photos);
    let verdicts = verdicts(&state, &photos).await;
    let groups = duplicate_groups(&state, &photos, &verdicts);
    let name = |i: usize| photos[i].0.to_string();
    if q.detail {
        let data = duplicate_details(&groups, name);
        return Ok(success(data, album.invalid));
    }
    let data: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            std::iter::once(g.keeper)
                .chain(g.members.iter().map(|m| m.index))
                .map(name)
                .collect()
        })
        .collect();
    Ok(success(data, album.invalid))
}

// ------------------------------------------------------------------------------ score

#[derive(Debug, Serialize, ToSchema)]
pub struct ScoredImage {
    pub image: String,
    pub score: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScoredCategory {
    pub category: String,
    pub images: Vec<ScoredImage>,
    /// With `?detail=true`: the best photos of the category, leaving out low-quality photos
    /// and duplicates that are not their group's keeper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highlights: Option<Vec<String>>,
}

/// Aesthetic scores per category, in input order; `?detail=true` adds highlights.
#[utoipa::path(post, path = "/api/albums/score", tag = "albums", request_body = ScoreRequest, params(DetailQuery),
    responses((status = 201, body = Vec<ScoredCategory>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn score(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DetailQuery>,
    ApiJson(req): ApiJson<ScoreRequest>,
) -> ApiResult {
    let categories = validate_score(&req, &state.settings.bucket)?;
    if state.analyzer.models().aesthetic.is_none() {
        return Err(model_unavailable(
            "scoring",
            format_args!(
                "this deployment runs without the aesthetic head ({}), which scores and highlights need; \
                 install it in the model folder (docs/deploy.md, \"Model files\")",
                crate::analysis::score::AESTHETIC_FILE
            ),
        ));
    }
    let all: Vec<ImageRef> = categories.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    let album = with_embeddings(album(&state, &all).await?);
    let by_ref: HashMap<&ImageRef, &Features> = album.photos.iter().map(|(r, f)| (r, f)).collect();
    // Highlights leave out low-quality photos and non-keeper duplicates of the whole album.
    let excluded: HashSet<&ImageRef> = if q.detail {
        let photos = distinct(&album.photos);
        let verdicts = verdicts(&state, &photos).await;
        let groups = duplicate_groups(&state, &photos, &verdicts);
        photos
            .iter()
            .zip(highlight_eligible(&verdicts, &groups))
            .filter(|(_, eligible)| !eligible)
            .map(|((r, _), _)| r)
            .collect()
    } else {
        HashSet::new()
    };
    let data: Vec<ScoredCategory> = categories
        .iter()
        .map(|(category, refs)| {
            // A photo listed twice in a category (under any spelling) is scored once.
            let mut seen = HashSet::new();
            let mut left_out = HashSet::new();
            let images: Vec<ScoredImage> = refs
                .iter()
                .filter(|r| seen.insert(*r))
                .filter_map(|r| {
                    let f = by_ref.get(r)?;
                    if excluded.contains(r) {
                        left_out.insert(r.as_str());
                    }
                    Some(ScoredImage {
                        image: r.to_string(),
                        score: state.analyzer.aesthetic(&f.record)?,
                    })
                })
                .collect();
            let highlights = q.detail.then(|| {
                best_highlights(
                    images.iter().map(|i| (i.image.as_str(), i.score)),
                    |image| !left_out.contains(image),
                    state.analyzer.settings().highlights,
                )
                .into_iter()
                .map(str::to_owned)
                .collect()
            });
            ScoredCategory {
                category: category.clone(),
                images,
                highlights,
            }
        })
        .collect();
    Ok(success(data, album.invalid))
}

/// The detail view of duplicate groups (`?detail=true`): each keeper and why each member
/// joined it. `name(i)` names photo `i`. (The route and `ongi analyze` share it.)
pub fn duplicate_details(
    groups: &[crate::analysis::duplicate::Group],
    name: impl Fn(usize) -> String,
) -> Vec<DuplicateGroup> {
    groups
        .iter()
        .map(|g| DuplicateGroup {
            keeper: name(g.keeper),
            duplicates: g
                .members
                .iter()
                .map(|m: &Member| DuplicateMember {
                    image: name(m.index),
                    tier: m.tier,
                    hamming: m.hamming,
                    cosine: m.cosine,
                })
                .collect(),
        })
        .collect()
}

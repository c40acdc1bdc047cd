//! The shapes an album's analyses are answered in: the album routes' `data` (the anchor's
//! shapes, and the richer `?detail=true` ones) and the sections of `ongi analyze`'s report.

use serde::Serialize;
use utoipa::ToSchema;

use crate::analysis::duplicate::Tier;
use crate::analysis::quality::QualityMetrics;
use crate::domain::Reason;

/// A photo that could not be used, with a stable machine-readable reason
/// (`empty`, `corrupt`, `unsupported_format`, `too_large`, `not_found`, …) and a sentence.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct InvalidImage {
    pub image: String,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryGroup {
    /// The tag's display name (≤ 20 characters), or `기타` for photos that fit no tag.
    pub category: String,
    pub images: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QualityDetail {
    pub image: String,
    pub low_quality: bool,
    /// `blurry`, `underexposed`, `overexposed`, `looks_blurry`, `looks_bad`.
    pub reasons: Vec<&'static str>,
    pub metrics: QualityMetrics,
}

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

//! The album analyses: pure functions over per-photo features ([`FeatureRecord`]) and text
//! vectors, with no I/O (the text embeddings and the cache are
//! [`crate::pipeline::analyzer::Analyzer`]'s).
//!
//! - [`category`]: zero-shot tags (the anchor's algorithm, defects fixed) over [`taxonomy`].
//! - [`duplicate`]: exact / near / similar tiers, each group around its best photo.
//! - [`quality`]: blur, exposure and CLIP prompt pairs, each a stated reason.
//! - [`score`]: highlights, from the aesthetic head's scores.
//! - [`people`]: faces grouped by identity.
//! - [`record`]: the per-photo feature record and its binary form.

pub mod category;
pub mod duplicate;
pub mod people;
pub mod quality;
pub mod record;
pub mod score;
pub mod taxonomy;

use std::time::Duration;

use quality::QualityThresholds;

pub use record::FeatureRecord;

/// Tunable thresholds of the analyses (settings `ONGI_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisSettings {
    /// Tag similarity below this never assigns a tag (`ONGI_CATEGORY_FLOOR`).
    pub category_floor: f32,
    /// CLIP cosine at or above this makes two photos `similar` duplicates (`ONGI_DUPLICATE_COSINE`).
    pub similar_cosine: f32,
    pub quality: QualityThresholds,
    /// Highlights per category in `score?detail=true` (`ONGI_HIGHLIGHTS`).
    pub highlights: usize,
    /// How long the shared cache keeps the text embeddings of callers' concepts
    /// (`ONGI_TEXT_CACHE_TTL_SECS`, 1 day); the taxonomy's own prompts keep the features' TTL.
    pub concept_text_ttl: Duration,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        Self {
            category_floor: 0.2,
            similar_cosine: 0.95,
            quality: QualityThresholds::default(),
            highlights: 3,
            concept_text_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

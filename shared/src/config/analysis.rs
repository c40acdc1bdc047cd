//! The analyses' thresholds: [`AnalysisSettings`] and its [`QualityThresholds`], with their
//! defaults and the `ONGI_*` settings that change them. The analyses only read these values.

use std::time::Duration;

use super::error::SettingsError;
use super::parse;
use super::read::{MAX_TTL_SECS, setting};

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
    /// Bytes a minute (keys and values) that callers' texts may add to the shared cache, all
    /// callers of the process together (`ONGI_TEXT_CACHE_KB_PER_MIN`, 128 KiB; 0: none).
    pub caller_text_bytes_per_min: u64,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        Self {
            category_floor: 0.2,
            similar_cosine: 0.95,
            quality: QualityThresholds::default(),
            highlights: 3,
            concept_text_ttl: Duration::from_secs(24 * 3600),
            caller_text_bytes_per_min: 128 << 10,
        }
    }
}

/// Thresholds (settings `ONGI_QUALITY_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityThresholds {
    /// Laplacian variance below this is `blurry` (anchor: 80).
    pub blur_variance: f64,
    /// Fraction of pixels at ≤ 5 (of 255) above this is `underexposed`…
    pub dark_fraction: f32,
    /// …and at ≥ 250 above this is `overexposed`.
    pub bright_fraction: f32,
    /// P(positive prompt) below this is `looks_blurry` / `looks_bad`. 0 disables the CLIP tests.
    pub clip_probability: f32,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        Self {
            blur_variance: 80.0,
            dark_fraction: 0.5,
            bright_fraction: 0.4,
            clip_probability: 0.1,
        }
    }
}

impl AnalysisSettings {
    /// The thresholds from `get`, each unset one at its default.
    pub(super) fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = Self::default();
        Ok(Self {
            category_floor: setting(get, "ONGI_CATEGORY_FLOOR", d.category_floor, parse::cosine)?,
            similar_cosine: setting(get, "ONGI_DUPLICATE_COSINE", d.similar_cosine, parse::cosine_or_off)?,
            quality: QualityThresholds::read(get, d.quality)?,
            // At most the photos of one call: more highlights than photos mean nothing.
            highlights: setting(get, "ONGI_HIGHLIGHTS", d.highlights, |v| parse::count(v, 1..=1000))?,
            concept_text_ttl: setting(get, "ONGI_TEXT_CACHE_TTL_SECS", d.concept_text_ttl, |v| {
                parse::seconds(v, MAX_TTL_SECS)
            })?,
            caller_text_bytes_per_min: setting(get, "ONGI_TEXT_CACHE_KB_PER_MIN", d.caller_text_bytes_per_min, |v| {
                parse::count(v, 0u64..=1 << 20).map(|kib| kib << 10)
            })?,
        })
    }
}

impl QualityThresholds {
    fn read(get: &impl Fn(&str) -> Option<String>, d: Self) -> Result<Self, SettingsError> {
        Ok(Self {
            blur_variance: setting(get, "ONGI_QUALITY_BLUR", d.blur_variance, parse::non_negative)?,
            dark_fraction: setting(get, "ONGI_QUALITY_DARK_FRACTION", d.dark_fraction, parse::fraction)?,
            bright_fraction: setting(get, "ONGI_QUALITY_BRIGHT_FRACTION", d.bright_fraction, parse::fraction)?,
            clip_probability: setting(
                get,
                "ONGI_QUALITY_CLIP_PROBABILITY",
                d.clip_probability,
                parse::fraction,
            )?,
        })
    }
}

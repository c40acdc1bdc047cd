//! Quality: why a photo is low quality, from the features already cached.
//!
//! Three independent tests, each a stated reason:
//! - `blurry`: variance of the Laplacian at a 300 px long side below a threshold (the
//!   anchor's test and its default of 80);
//! - `underexposed` / `overexposed`: most of the photo crushed to black or blown to white;
//! - `looks_blurry` / `looks_bad`: CLIP zero-shot prompt pairs ("a sharp photo" vs "a blurry
//!   photo", "a good photo" vs "a bad photo") with CLIP's logit scale of 100. The anchor
//!   compared raw cosines, which squeezed every probability to about 0.5 and made its
//!   thresholds (0.488, 0.490) meaningless.

use serde::Serialize;
use utoipa::ToSchema;

use crate::analysis::FeatureRecord;
use crate::config::QualityThresholds;

/// CLIP's learned temperature for ViT-B/32 (exp(4.6052)).
pub const CLIP_LOGIT_SCALE: f32 = 100.0;

/// The prompt pairs, positive first. Their text embeddings are computed once per model.
pub const PROMPT_PAIRS: [(&str, &str, &str); 2] = [
    ("sharp", "a sharp photo.", "a blurry photo."),
    ("good", "a good photo.", "a bad photo."),
];

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct QualityMetrics {
    pub blur_variance: f64,
    pub mean_luma: f32,
    pub shadows_clipped: f32,
    pub highlights_clipped: f32,
    /// P("a sharp photo") against "a blurry photo", when CLIP is available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_sharp: Option<f32>,
    /// P("a good photo") against "a bad photo", when CLIP is available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_good: Option<f32>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct QualityVerdict {
    pub low_quality: bool,
    /// `blurry`, `underexposed`, `overexposed`, `looks_blurry`, `looks_bad`.
    pub reasons: Vec<&'static str>,
    pub metrics: QualityMetrics,
}

/// Softmax of the two scaled cosines, i.e. P(positive).
pub fn pair_probability(embedding: &[f32], positive: &[f32], negative: &[f32]) -> f32 {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let gap = CLIP_LOGIT_SCALE * (dot(embedding, positive) - dot(embedding, negative));
    1.0 / (1.0 + (-gap).exp())
}

/// `pairs`: the normalised text embeddings of [`PROMPT_PAIRS`], `(positive, negative)` each.
pub fn assess(record: &FeatureRecord, pairs: Option<&[(Vec<f32>, Vec<f32>)]>, t: &QualityThresholds) -> QualityVerdict {
    let mut reasons = Vec::new();
    if record.blur_variance < t.blur_variance {
        reasons.push("blurry");
    }
    let e = &record.exposure;
    if e.shadows_clipped > t.dark_fraction {
        reasons.push("underexposed");
    }
    if e.highlights_clipped > t.bright_fraction {
        reasons.push("overexposed");
    }
    let probabilities = match (record.embedding.as_deref(), pairs) {
        (Some(emb), Some(pairs)) if pairs.len() == PROMPT_PAIRS.len() => Some((
            pair_probability(emb, &pairs[0].0, &pairs[0].1),
            pair_probability(emb, &pairs[1].0, &pairs[1].1),
        )),
        _ => None,
    };
    if let Some((p_sharp, p_good)) = probabilities {
        if p_sharp < t.clip_probability {
            reasons.push("looks_blurry");
        }
        if p_good < t.clip_probability {
            reasons.push("looks_bad");
        }
    }
    QualityVerdict {
        low_quality: !reasons.is_empty(),
        reasons,
        metrics: QualityMetrics {
            blur_variance: record.blur_variance,
            mean_luma: e.mean,
            shadows_clipped: e.shadows_clipped,
            highlights_clipped: e.highlights_clipped,
            p_sharp: probabilities.map(|p| p.0),
            p_good: probabilities.map(|p| p.1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageFormat;
    use crate::image::features::Exposure;

    pub(crate) fn record(blur: f64, dark: f32, bright: f32, embedding: Option<Vec<f32>>) -> FeatureRecord {
        FeatureRecord {
            embedding,
            phash: 0,
            blur_variance: blur,
            exposure: Exposure {
                mean: 120.0,
                std: 30.0,
                shadows_clipped: dark,
                highlights_clipped: bright,
                p05: 10,
                p95: 240,
            },
            width: 100,
            height: 100,
            format: ImageFormat::Jpeg,
            captured_at: None,
        }
    }

    #[test]
    fn each_reason_is_stated() {
        let t = QualityThresholds::default();
        assert!(!assess(&record(500.0, 0.0, 0.0, None), None, &t).low_quality);
        assert_eq!(assess(&record(20.0, 0.0, 0.0, None), None, &t).reasons, vec!["blurry"]);
        assert_eq!(
            assess(&record(500.0, 0.8, 0.0, None), None, &t).reasons,
            vec!["underexposed"]
        );
        assert_eq!(
            assess(&record(500.0, 0.0, 0.9, None), None, &t).reasons,
            vec!["overexposed"]
        );
    }

    #[test]
    fn the_logit_scale_makes_clip_decisive() {
        // Cosines 0.26 vs 0.22: without the scale σ(0.04) ≈ 0.51; with it σ(4) ≈ 0.98.
        let e = vec![1.0, 0.0];
        let pos = vec![0.26, 0.0];
        let neg = vec![0.22, 0.0];
        let p = pair_probability(&e, &pos, &neg);
        assert!((p - 0.982).abs() < 0.001, "{p}");
        let pairs = vec![(neg.clone(), pos.clone()), (pos.clone(), neg.clone())];
        let v = assess(
            &record(500.0, 0.0, 0.0, Some(e)),
            Some(&pairs),
            &QualityThresholds::default(),
        );
        assert_eq!(v.reasons, vec!["looks_blurry"]);
        assert!(v.metrics.p_sharp.unwrap() < 0.1 && v.metrics.p_good.unwrap() > 0.9);
    }
}

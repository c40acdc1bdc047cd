//! Aesthetic score: the LAION aesthetic predictor's linear head for ViT-B/32 (512 weights
//! and a bias) applied to the L2-normalised CLIP image embedding, as the anchor did; and the
//! highlights: the best-scored photos of a category that are worth showing.

use std::path::Path;

use safetensors::SafeTensors;

use std::collections::HashSet;

use super::duplicate::Group;
use super::quality::QualityVerdict;
use crate::model::ModelError;
use crate::model::clip::EMBED_DIM;

pub const AESTHETIC_FILE: &str = "aesthetic-vit-b32-linear.safetensors";

#[derive(Debug, Clone)]
pub struct AestheticHead {
    weight: Vec<f32>,
    bias: f32,
}

impl AestheticHead {
    /// Reads `weight` f32 [1,512] and `bias` f32 [1] from a safetensors file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|_| ModelError::Missing(path.to_owned()))?;
        let contract = |reason: String| ModelError::Contract {
            model: AESTHETIC_FILE.to_owned(),
            reason,
        };
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| contract(e.to_string()))?;
        let read = |name: &str, len: usize| -> Result<Vec<f32>, ModelError> {
            let t = tensors.tensor(name).map_err(|e| contract(format!("{name}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape().iter().product::<usize>() != len {
                return Err(contract(format!(
                    "{name} is {:?} {:?}, expected F32 with {len} values",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let weight = read("weight", EMBED_DIM)?;
        let bias = read("bias", 1)?[0];
        Ok(Self { weight, bias })
    }

    /// The score of a normalised embedding.
    pub fn score(&self, embedding: &[f32]) -> f32 {
        self.weight.iter().zip(embedding).map(|(w, e)| w * e).sum::<f32>() + self.bias
    }
}

/// Which photos may be highlights (`verdicts[i]` is photo `i`, as in `groups`): not low
/// quality, and not a duplicate other than its group's keeper (the keeper stands for it).
pub fn highlight_eligible(verdicts: &[QualityVerdict], groups: &[Group]) -> Vec<bool> {
    let mut eligible: Vec<bool> = verdicts.iter().map(|v| !v.low_quality).collect();
    for m in groups.iter().flat_map(|g| &g.members) {
        if let Some(e) = eligible.get_mut(m.index) {
            *e = false;
        }
    }
    eligible
}

/// The `n` best of `scored` (image, score) by score, ties in input order, each image once,
/// among the images `eligible` accepts.
pub fn highlights<'a>(
    scored: impl IntoIterator<Item = (&'a str, f32)>,
    eligible: impl Fn(&str) -> bool,
    n: usize,
) -> Vec<&'a str> {
    let mut best: Vec<(&str, f32)> = scored.into_iter().filter(|(image, _)| eligible(image)).collect();
    // Stable: equal scores keep the caller's order.
    best.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut seen = HashSet::new();
    best.into_iter()
        .filter(|(image, _)| seen.insert(*image))
        .take(n)
        .map(|(image, _)| image)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::duplicate::{Member, Tier};
    use crate::analysis::quality::QualityMetrics;

    fn verdict(low_quality: bool) -> QualityVerdict {
        QualityVerdict {
            low_quality,
            reasons: if low_quality { vec!["blurry"] } else { vec![] },
            metrics: QualityMetrics {
                blur_variance: 100.0,
                mean_luma: 100.0,
                shadows_clipped: 0.0,
                highlights_clipped: 0.0,
                p_sharp: None,
                p_good: None,
            },
        }
    }

    #[test]
    fn low_quality_photos_and_non_keeper_duplicates_are_not_eligible() {
        let groups = vec![Group {
            keeper: 1,
            members: vec![Member {
                index: 2,
                tier: Tier::Near,
                hamming: 3,
                cosine: None,
            }],
        }];
        let verdicts = [verdict(true), verdict(false), verdict(false), verdict(false)];
        assert_eq!(highlight_eligible(&verdicts, &groups), vec![false, true, false, true]);
    }

    #[test]
    fn highlights_are_the_best_eligible_each_once_ties_in_order() {
        let scored = [("a", 5.0), ("b", 7.0), ("c", 7.0), ("b", 7.0), ("d", 9.0), ("e", 1.0)];
        assert_eq!(highlights(scored, |i| i != "d", 3), vec!["b", "c", "a"]);
        assert_eq!(highlights(scored, |_| true, 10), vec!["d", "b", "c", "a", "e"]);
        assert!(highlights(scored, |_| true, 0).is_empty());
    }
}

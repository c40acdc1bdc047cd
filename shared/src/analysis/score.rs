//! Highlights: the best-scored photos of a category that are worth showing (the scores come
//! from the aesthetic head, [`crate::model::aesthetic`]).

use std::collections::HashSet;

use super::duplicate::Group;
use super::quality::QualityVerdict;

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

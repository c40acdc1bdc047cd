//! Scores of a clustering against the true identities.

use std::collections::HashMap;

/// One label per face from clusters: cluster `k` is label `k`; a face in no cluster gets
/// a label of its own (noise counts as singletons, as is usual for ARI).
pub fn labels_from_clusters(n: usize, clusters: &[Vec<usize>]) -> Vec<usize> {
    let mut labels: Vec<Option<usize>> = vec![None; n];
    for (k, c) in clusters.iter().enumerate() {
        for &i in c {
            if let Some(l) = labels.get_mut(i) {
                *l = Some(k);
            }
        }
    }
    let mut next = clusters.len();
    labels
        .into_iter()
        .map(|l| {
            l.unwrap_or_else(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

fn pairs(x: u64) -> f64 {
    (x as f64) * (x as f64 - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert & Arabie) from the contingency table of two labelings of
/// the same items. 1 = identical partitions, ≈ 0 = chance. Where the denominator is 0
/// (both partitions all singletons or all one cluster) it is 1, as in sklearn.
pub fn adjusted_rand_index(truth: &[usize], predicted: &[usize]) -> f64 {
    let n = truth.len().min(predicted.len());
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let mut rows: HashMap<usize, u64> = HashMap::new();
    let mut cols: HashMap<usize, u64> = HashMap::new();
    for i in 0..n {
        *table.entry((truth[i], predicted[i])).or_default() += 1;
        *rows.entry(truth[i]).or_default() += 1;
        *cols.entry(predicted[i]).or_default() += 1;
    }
    let index: f64 = table.values().map(|&c| pairs(c)).sum();
    let a: f64 = rows.values().map(|&c| pairs(c)).sum();
    let b: f64 = cols.values().map(|&c| pairs(c)).sum();
    let total = pairs(n as u64);
    if total == 0.0 {
        return 1.0;
    }
    let expected = a * b / total;
    let max = (a + b) / 2.0;
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Purity over the clustered faces: each cluster counts its most common true identity.
/// `None` when nothing is clustered.
pub fn purity(truth: &[usize], clusters: &[Vec<usize>]) -> Option<f64> {
    let mut clustered = 0usize;
    let mut majority = 0usize;
    for c in clusters {
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for &i in c {
            if let Some(&t) = truth.get(i) {
                *counts.entry(t).or_default() += 1;
                clustered += 1;
            }
        }
        majority += counts.values().copied().max().unwrap_or(0);
    }
    (clustered > 0).then(|| majority as f64 / clustered as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_and_purity() {
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 7, 7]) - 1.0).abs() < 1e-12);
        // sklearn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.571_428_571_4).abs() < 1e-9);
        // sklearn: adjusted_rand_score([0,0,0,1,1,1],[0,0,1,1,2,2]) = 0.2424242424
        assert!((adjusted_rand_index(&[0, 0, 0, 1, 1, 1], &[0, 0, 1, 1, 2, 2]) - 0.242_424_242_4).abs() < 1e-9);
        assert_eq!(labels_from_clusters(4, &[vec![2, 3]]), vec![1, 2, 0, 0]);
        assert_eq!(purity(&[0, 0, 1, 1], &[vec![0, 1, 2]]), Some(2.0 / 3.0));
        assert_eq!(purity(&[0, 0], &[]), None);
    }
}

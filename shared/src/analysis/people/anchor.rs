//! The anchor's people clustering (the Python service Ongi replaces), kept exactly as the
//! baseline that `ongi eval people` and the tests compare [`cluster_faces`](super::cluster_faces)
//! with. Its defects are listed in the parent module.

use super::{dot, unit_embeddings};

/// The anchor's DBSCAN radius (cosine distance, inclusive) and core size.
pub const ANCHOR_EPS: f32 = 0.6;
pub const ANCHOR_MIN_SAMPLES: usize = 2;

/// The anchor's people clustering, exactly: sklearn `DBSCAN(eps=0.6, min_samples=2,
/// metric="cosine")` (inclusive radius, the point itself counted, clusters labelled in the
/// order of their first core point, a border point taken by the first cluster to reach it),
/// then its validation (n < 5: keep iff the max pairwise distance < 0.6; n ≥ 5: keep iff the
/// mean pairwise distance < 0.5), then sorted by size, descending (stable). Members are in
/// index order; unusable embeddings count as zero vectors (distance 1 to everything).
pub fn anchor_clusters(embeddings: &[Vec<f32>]) -> Vec<Vec<usize>> {
    let units = unit_embeddings(embeddings.iter().map(Vec::as_slice));
    let n = units.len();
    let distance = |a: usize, b: usize| -> f32 {
        if a == b {
            return 0.0;
        }
        match (&units[a], &units[b]) {
            (Some(x), Some(y)) => (1.0 - dot(x, y)).clamp(0.0, 2.0),
            _ => 1.0,
        }
    };
    let neighbours: Vec<Vec<usize>> = (0..n)
        .map(|a| (0..n).filter(|&b| distance(a, b) <= ANCHOR_EPS).collect())
        .collect();
    let core: Vec<bool> = neighbours.iter().map(|nb| nb.len() >= ANCHOR_MIN_SAMPLES).collect();
    let mut label: Vec<Option<usize>> = vec![None; n];
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for start in 0..n {
        if label[start].is_some() || !core[start] {
            continue;
        }
        let id = clusters.len();
        let mut stack = vec![start];
        while let Some(x) = stack.pop() {
            if label[x].is_none() {
                label[x] = Some(id);
                if core[x] {
                    stack.extend(neighbours[x].iter().copied().filter(|&v| label[v].is_none()));
                }
            }
        }
        clusters.push((0..n).filter(|&i| label[i] == Some(id)).collect());
    }
    clusters.retain(|members| {
        let k = members.len();
        let pairs = members
            .iter()
            .enumerate()
            .flat_map(|(p, &a)| members[p + 1..].iter().map(move |&b| (a, b)));
        if k < 5 {
            pairs.map(|(a, b)| distance(a, b)).fold(0.0, f32::max) < 0.6
        } else {
            let (sum, count) = pairs.fold((0.0f64, 0usize), |(s, c), (a, b)| {
                (s + f64::from(distance(a, b)), c + 1)
            });
            count > 0 && sum / (count as f64) < 0.5
        }
    });
    clusters.sort_by_key(|c| std::cmp::Reverse(c.len()));
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::people::tests::unit;

    #[test]
    fn anchor_validation_rules() {
        // Three faces chained at 34° steps (cos 0.83 per step): the ends are 68° apart
        // (distance 0.63 ≥ 0.6), so the cluster of three is dropped; a tight pair stays.
        let e = vec![
            unit(0.0, 6, 0),
            unit(34.0, 6, 0),
            unit(68.0, 6, 0),
            unit(0.0, 6, 3),
            unit(10.0, 6, 3),
        ];
        assert_eq!(anchor_clusters(&e), vec![vec![3, 4]]);
    }
}

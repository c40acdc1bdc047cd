//! People: faces grouped by identity (density-based clustering on cosine distance), each
//! cluster around its best face. Pure functions over L2-normalised face embeddings.
//!
//! **The anchor** ran sklearn `DBSCAN(eps=0.6, min_samples=2, metric="cosine")`, then dropped
//! whole clusters that failed a spread test (n < 5: max pairwise distance < 0.6; n ≥ 5: mean
//! pairwise distance < 0.5). With `min_samples = 2` every pair at cos ≥ 0.4 is a link, so one
//! stray face (a profile, a blurred face, a look-alike) chains two people into one cluster,
//! and the spread test then throws the merged cluster away: both people vanish. It also
//! listed a photo twice when two of its faces landed in one cluster, and took the earliest
//! face as the representative. [`anchor_clusters`] keeps that algorithm as the baseline.
//!
//! **Here** ([`cluster_faces`]), with the defaults of [`PeopleParams`]:
//! 1. *Tighter cores.* DBSCAN whose core links need cos ≥ 0.5 (distance ≤ 0.5) instead of
//!    0.4; a non-core face joins the cluster of its nearest core face if that is within the
//!    anchor's 0.6 (so the 0.4–0.5 tail of a person's faces is still taken, but never links
//!    two cores). Two faces of one photo are never linked (a person appears once per photo).
//! 2. *Split instead of drop.* The anchor's validation is a mean-distance test on the whole
//!    cluster; here the same kind of test is applied hierarchically: inside each DBSCAN
//!    cluster, average linkage merges parts while their mean distance is ≤ 0.6 (mean
//!    cos ≥ 0.4). Two people chained by a few stray links have a mean cos near their
//!    between-person level (≈ 0.15) and come apart; each part that passes is kept, so a
//!    merge costs nothing instead of losing both people. (A medoid alone cannot do this: the
//!    bridging face is often the medoid.)
//! 3. *Medoid radius.* In each part, members farther than 0.6 from the medoid (the member with
//!    the highest summed cosine to the others) are released, repeated until none is.
//! 4. *One face per photo.* If a photo still has two faces in one part, the one closer to the
//!    medoid stays (it is the one that matches the person; ties: better quality, then lower
//!    index) and the other is released. Parts left with fewer than two faces are dissolved.
//! 5. *Re-clustering.* Released and unclustered faces are clustered again (same rules) until
//!    a round forms nothing.
//!
//! Why by hand and not the `hdbscan` crate: the job needs cannot-link pairs (same photo), a
//! nearest-core border rule and the split and medoid passes inside the loop, none of which a
//! library exposes; DBSCAN is forty lines over a neighbour list and average linkage a
//! nearest-neighbour chain, and no dependency is added. Cost: O(n²·d) per round for the
//! neighbour lists (12.5 M dot products of 128 floats for 5,000 faces), plus O(k²) time and
//! memory per DBSCAN cluster of k faces for the split.
//!
//! Output is deterministic: faces are visited in index order, ties break on the lower index,
//! and clusters are sorted by size (descending), then by their first photo, then first face.

use std::cmp::Ordering;

/// One detected face.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceInput {
    /// Index of the photo the face is in (two faces of one photo are never one person).
    pub photo: usize,
    /// L2-normalised embedding (renormalised here; an empty, non-finite or zero vector, or
    /// one whose length differs from the first usable face's, is never clustered).
    pub embedding: Vec<f32>,
    /// Higher is better: picks the representative. The caller combines size, detection
    /// score, sharpness and frontalness.
    pub quality: f32,
}

/// One person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Indices into the input, ascending; no two from the same photo.
    pub faces: Vec<usize>,
    /// The member with the best `quality` (ties: the lowest index).
    pub representative: usize,
}

/// Cosine-distance thresholds of [`cluster_faces`] (distance = 1 − cosine).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeopleParams {
    /// Two faces this close are neighbours for the core test and core-to-core links.
    pub core_distance: f32,
    /// Neighbours within `core_distance` a face needs to be a core, itself included
    /// (sklearn's convention; 2 = one other face).
    pub min_samples: usize,
    /// A non-core face joins its nearest core face's cluster if it is this close.
    pub border_distance: f32,
    /// Inside a DBSCAN cluster, parts merge by average linkage while their mean distance is
    /// at most this; parts that stay apart become separate clusters.
    pub split_distance: f32,
    /// Members farther than this from their cluster's medoid are released.
    pub medoid_distance: f32,
    /// Clustering rounds at most (each later round only sees faces left over).
    pub max_rounds: usize,
}

impl Default for PeopleParams {
    /// Core links at cos ≥ 0.5; borders, the split's mean and the medoid radius at the
    /// anchor's cos ≥ 0.4. SFace's own same-person threshold is cos 0.363 (OpenCV zoo), so
    /// 0.4 for membership is the anchor's slightly stricter choice, kept; 0.5 for cores is
    /// what stops most chaining, and the split undoes the rest. Not tuned on the synthetic
    /// evaluation (a core at cos ≥ 0.55 scored slightly higher there; real faces decide).
    fn default() -> Self {
        Self {
            core_distance: 0.5,
            min_samples: 2,
            border_distance: 0.6,
            split_distance: 0.6,
            medoid_distance: 0.6,
            max_rounds: 8,
        }
    }
}

/// DBSCAN clusters larger than this are not split (the split holds a k×k matrix: 64 MB
/// at this size); they still get the medoid and one-face-per-photo passes.
const MAX_SPLIT: usize = 4096;

/// The anchor's DBSCAN radius (cosine distance, inclusive) and core size.
pub const ANCHOR_EPS: f32 = 0.6;
pub const ANCHOR_MIN_SAMPLES: usize = 2;

/// Cosine similarity of two unit vectors (their dot product).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Unit copies of the usable embeddings (`None`: never clustered).
fn unit_embeddings<'a>(embeddings: impl Iterator<Item = &'a [f32]>) -> Vec<Option<Vec<f32>>> {
    let mut dim = None;
    embeddings
        .map(|e| {
            if e.is_empty() || e.iter().any(|x| !x.is_finite()) || dim.is_some_and(|d| d != e.len()) {
                return None;
            }
            let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !(norm > 0.0 && norm.is_finite()) {
                return None;
            }
            dim = Some(e.len());
            Some(e.iter().map(|x| x / norm).collect())
        })
        .collect()
}

/// Groups faces into people. See the module documentation for the algorithm.
pub fn cluster_faces(faces: &[FaceInput], params: &PeopleParams) -> Vec<Cluster> {
    let units = unit_embeddings(faces.iter().map(|f| f.embedding.as_slice()));
    let mut pool: Vec<usize> = (0..faces.len()).filter(|&i| units[i].is_some()).collect();
    let sim = |a: usize, b: usize| match (&units[a], &units[b]) {
        (Some(x), Some(y)) => dot(x, y),
        _ => -1.0,
    };
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for _ in 0..params.max_rounds.max(1) {
        let mut formed = false;
        for group in dbscan_round(&pool, faces, &sim, params) {
            for kept in refine(group, faces, &sim, params) {
                clusters.push(kept);
                formed = true;
            }
        }
        if !formed {
            break;
        }
        let mut taken = vec![false; faces.len()];
        clusters.iter().flatten().for_each(|&i| taken[i] = true);
        pool.retain(|&i| !taken[i]);
    }
    let mut out: Vec<Cluster> = clusters
        .into_iter()
        .map(|mut members| {
            members.sort_unstable();
            let representative = best_quality(&members, faces);
            Cluster {
                faces: members,
                representative,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        let first_photo = |c: &Cluster| c.faces.iter().map(|&i| faces[i].photo).min();
        b.faces
            .len()
            .cmp(&a.faces.len())
            .then_with(|| first_photo(a).cmp(&first_photo(b)))
            .then_with(|| a.faces.first().cmp(&b.faces.first()))
    });
    out
}

/// Comparable quality: non-finite values rank last.
fn quality_of(face: &FaceInput) -> f32 {
    if face.quality.is_finite() {
        face.quality
    } else {
        f32::NEG_INFINITY
    }
}

/// The member with the best quality; ties to the lowest index (`members` ascending).
fn best_quality(members: &[usize], faces: &[FaceInput]) -> usize {
    let mut best = members.first().copied().unwrap_or_default();
    for &i in members {
        if quality_of(&faces[i]).total_cmp(&quality_of(&faces[best])) == Ordering::Greater {
            best = i;
        }
    }
    best
}

/// One DBSCAN pass over `pool` (face indices, ascending): core links within
/// `core_distance`, non-core faces to their nearest core within `border_distance`, no link
/// inside a photo. Returns the groups (indices ascending) in the order of their first core.
fn dbscan_round(
    pool: &[usize],
    faces: &[FaceInput],
    sim: &impl Fn(usize, usize) -> f32,
    params: &PeopleParams,
) -> Vec<Vec<usize>> {
    let m = pool.len();
    let core_sim = 1.0 - params.core_distance;
    let border_sim = 1.0 - params.border_distance.max(params.core_distance);
    // Neighbours within the border radius, as (position in pool, similarity).
    let mut neighbours: Vec<Vec<(usize, f32)>> = vec![Vec::new(); m];
    for a in 0..m {
        for b in a + 1..m {
            if faces[pool[a]].photo == faces[pool[b]].photo {
                continue;
            }
            let s = sim(pool[a], pool[b]);
            if s >= border_sim {
                neighbours[a].push((b, s));
                neighbours[b].push((a, s));
            }
        }
    }
    let core: Vec<bool> = neighbours
        .iter()
        .map(|n| 1 + n.iter().filter(|&&(_, s)| s >= core_sim).count() >= params.min_samples.max(1))
        .collect();
    let mut label: Vec<Option<usize>> = vec![None; m];
    let mut groups = 0;
    for start in 0..m {
        if !core[start] || label[start].is_some() {
            continue;
        }
        label[start] = Some(groups);
        let mut stack = vec![start];
        while let Some(x) = stack.pop() {
            for &(y, s) in &neighbours[x] {
                if core[y] && s >= core_sim && label[y].is_none() {
                    label[y] = Some(groups);
                    stack.push(y);
                }
            }
        }
        groups += 1;
    }
    // Borders: the nearest core (ties: the lower position), read from the core labels only.
    let border_label: Vec<Option<usize>> = (0..m)
        .map(|a| {
            if core[a] {
                return label[a];
            }
            let mut best: Option<(usize, f32)> = None;
            for &(y, s) in &neighbours[a] {
                if core[y] && best.is_none_or(|(b, bs)| s > bs || (s == bs && y < b)) {
                    best = Some((y, s));
                }
            }
            best.and_then(|(y, _)| label[y])
        })
        .collect();
    let mut out = vec![Vec::new(); groups];
    for (a, l) in border_label.into_iter().enumerate() {
        if let Some(l) = l {
            out[l].push(pool[a]);
        }
    }
    out
}

/// Validation of one DBSCAN group: split by average linkage, then medoid radius, then one
/// face per photo. Returns the parts kept (members ascending, two or more each); the rest
/// go back to the pool.
fn refine(
    members: Vec<usize>,
    faces: &[FaceInput],
    sim: &impl Fn(usize, usize) -> f32,
    params: &PeopleParams,
) -> Vec<Vec<usize>> {
    let parts = if members.len() <= MAX_SPLIT {
        average_linkage(&members, sim, 1.0 - params.split_distance)
    } else {
        vec![members]
    };
    parts
        .into_iter()
        .map(|part| prune(part, faces, sim, params))
        .filter(|part| part.len() >= 2)
        .collect()
}

/// Average-linkage agglomeration of `members` (ascending), merging while the mean
/// similarity between two parts is at least `min_sim`. Nearest-neighbour chain: O(k²) time
/// and one k×k matrix; ties go to the lower index, so the result is deterministic. Parts
/// come back ascending, in the order of their first member.
fn average_linkage(members: &[usize], sim: &impl Fn(usize, usize) -> f32, min_sim: f32) -> Vec<Vec<usize>> {
    let k = members.len();
    if k < 2 {
        return vec![members.to_vec()];
    }
    let mut s = vec![0.0f32; k * k];
    for a in 0..k {
        for b in a + 1..k {
            let v = sim(members[a], members[b]);
            s[a * k + b] = v;
            s[b * k + a] = v;
        }
    }
    let mut parts: Vec<Vec<usize>> = (0..k).map(|a| vec![members[a]]).collect();
    // Active: may still merge. Parts whose best partner is below `min_sim` are final.
    let mut active = vec![true; k];
    let mut remaining = k;
    let mut chain: Vec<usize> = Vec::new();
    while remaining > 1 {
        let a = match chain.last() {
            Some(&a) => a,
            None => match active.iter().position(|&x| x) {
                Some(first) => {
                    chain.push(first);
                    first
                }
                None => break,
            },
        };
        let previous = chain.len().checked_sub(2).map(|i| chain[i]);
        let mut best: Option<(usize, f32)> = None;
        for c in (0..k).filter(|&c| c != a && active[c]) {
            let v = s[a * k + c];
            // Ties: the previous chain link (so reciprocal pairs are found), else the lower index.
            if best.is_none_or(|(_, bv)| v > bv || (v == bv && Some(c) == previous)) {
                best = Some((c, v));
            }
        }
        let Some((b, v)) = best else {
            break;
        };
        if Some(b) != previous {
            chain.push(b);
            continue;
        }
        // `a` and `b` are reciprocal nearest neighbours.
        chain.truncate(chain.len() - 2);
        if v < min_sim {
            // Neither can reach `min_sim` with anything any more (average linkage never
            // raises a similarity above the larger of the two it averages).
            active[a] = false;
            active[b] = false;
            remaining -= 2;
            continue;
        }
        let (keep, gone) = (a.min(b), a.max(b));
        let (nk, ng) = (parts[keep].len() as f32, parts[gone].len() as f32);
        for c in (0..k).filter(|&c| active[c] && c != keep && c != gone) {
            let merged = (nk * s[keep * k + c] + ng * s[gone * k + c]) / (nk + ng);
            s[keep * k + c] = merged;
            s[c * k + keep] = merged;
        }
        let moved = std::mem::take(&mut parts[gone]);
        parts[keep].extend(moved);
        active[gone] = false;
        remaining -= 1;
    }
    let mut out: Vec<Vec<usize>> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    out.iter_mut().for_each(|p| p.sort_unstable());
    out.sort_by_key(|p| p.first().copied());
    out
}

/// Medoid radius (repeated until no member is released), then one face per photo.
fn prune(
    mut members: Vec<usize>,
    faces: &[FaceInput],
    sim: &impl Fn(usize, usize) -> f32,
    params: &PeopleParams,
) -> Vec<usize> {
    let keep_sim = 1.0 - params.medoid_distance;
    loop {
        let Some(medoid) = medoid(&members, sim) else {
            return Vec::new();
        };
        let before = members.len();
        members.retain(|&i| i == medoid || sim(i, medoid) >= keep_sim);
        if members.len() == before {
            break;
        }
    }
    let Some(medoid) = medoid(&members, sim) else {
        return Vec::new();
    };
    // One face per photo: the closest to the medoid, then the better quality, then the
    // lower index.
    let better = |a: usize, b: usize| {
        sim(a, medoid)
            .total_cmp(&sim(b, medoid))
            .then_with(|| quality_of(&faces[a]).total_cmp(&quality_of(&faces[b])))
            .then_with(|| b.cmp(&a))
            == Ordering::Greater
    };
    let mut kept: Vec<usize> = Vec::with_capacity(members.len());
    for &i in &members {
        match kept.iter().position(|&k| faces[k].photo == faces[i].photo) {
            Some(p) if better(i, kept[p]) => kept[p] = i,
            Some(_) => {}
            None => kept.push(i),
        }
    }
    kept.sort_unstable();
    kept
}

/// The member with the highest summed similarity to the others (ties: the lowest index);
/// `None` for fewer than two members.
fn medoid(members: &[usize], sim: &impl Fn(usize, usize) -> f32) -> Option<usize> {
    if members.len() < 2 {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    for &i in members {
        let total: f64 = members.iter().filter(|&&j| j != i).map(|&j| f64::from(sim(i, j))).sum();
        if best.is_none_or(|(b, bt)| total > bt || (total == bt && i < b)) {
            best = Some((i, total));
        }
    }
    best.map(|(i, _)| i)
}

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

/// Scores of a clustering against the true identities.
pub mod metrics {
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
}

/// Synthetic albums with known identities, for the evaluation (`ongi eval people`) and
/// tests. Embeddings imitate SFace's cosine statistics; nothing here reads a file.
///
/// Generator (dimension 128, every vector unit length):
/// - a shared "face" direction `g`; identity centres `c = normalise(√β·g + √(1−β)·u)` with
///   `u` random and β = [`COMMON_SHARE`], so centres have cos ≈ β to each other; a
///   [`LOOKALIKE_SHARE`] of identities are look-alikes of an earlier one (siblings):
///   `c = normalise(0.55·c_other + 0.835·c_new)`, centre cos ≈ 0.6;
/// - a face is `a·c + √(1−a²)·n` with `n` random and orthogonal to `c`, so cos(face, c) = a
///   and two faces of one person have cos ≈ a₁·a₂:
///   typical faces a ∈ U(0.72, 0.90) (pairs 0.52–0.81), hard faces (profile, blur; share
///   [`HARD_SHARE`]) a ∈ U(0.55, 0.72), very hard outliers (share [`OUTLIER_SHARE`])
///   a ∈ U(0.25, 0.45), half of them also pulled towards a random other person by
///   b ∈ U(0.3, 0.45) (a face that looks like someone else);
/// - faces of different people then have cos ≈ a₁·a₂·β ± 0.09 (0–0.3), look-alikes ≈ 0.35;
/// - faces per identity: a [`SINGLETON_SHARE`] have one face (strangers), the rest 2–12;
/// - photos: about 0.7 photos per face; each face goes into a random photo that does not
///   already show that person, so group photos mix people; faces are ordered by photo;
/// - quality follows difficulty: typical U(0.5, 1), hard U(0.2, 0.6), outliers U(0, 0.3).
pub mod synthetic {
    use super::FaceInput;

    pub const DIM: usize = 128;
    pub const COMMON_SHARE: f64 = 0.25;
    pub const LOOKALIKE_SHARE: f64 = 0.1;
    pub const HARD_SHARE: f64 = 0.12;
    pub const OUTLIER_SHARE: f64 = 0.05;
    pub const SINGLETON_SHARE: f64 = 0.25;
    pub const MAX_FACES: usize = 12;

    /// SplitMix64: small, fast, and the same sequence on every platform.
    #[derive(Debug, Clone)]
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed ^ 0x6f6e_6769_7065_6f70)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.unit()
        }

        /// Uniform in 0..n (n > 0).
        pub fn below(&mut self, n: usize) -> usize {
            (self.unit() * n as f64) as usize % n.max(1)
        }

        /// Standard normal (Box–Muller).
        pub fn normal(&mut self) -> f64 {
            let u = 1.0 - self.unit();
            let v = self.unit();
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }

        pub fn unit_vector(&mut self) -> Vec<f64> {
            let v: Vec<f64> = (0..DIM).map(|_| self.normal()).collect();
            normalised(v)
        }
    }

    fn normalised(v: Vec<f64>) -> Vec<f64> {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        v.into_iter().map(|x| x / n).collect()
    }

    fn mix(parts: &[(f64, &[f64])]) -> Vec<f64> {
        let mut out = vec![0.0; DIM];
        for (w, v) in parts {
            out.iter_mut().zip(v.iter()).for_each(|(o, x)| *o += w * x);
        }
        out
    }

    /// A random unit vector orthogonal to the unit vector `c`.
    fn orthogonal(rng: &mut Rng, c: &[f64]) -> Vec<f64> {
        let n = rng.unit_vector();
        let d: f64 = n.iter().zip(c).map(|(x, y)| x * y).sum();
        normalised(mix(&[(1.0, &n), (-d, c)]))
    }

    #[derive(Debug, Clone)]
    pub struct SyntheticAlbum {
        pub faces: Vec<FaceInput>,
        /// The true identity of each face.
        pub identity: Vec<usize>,
    }

    impl SyntheticAlbum {
        /// An album of `identities` people from `seed` (the same seed, the same album).
        pub fn generate(identities: usize, seed: u64) -> Self {
            let mut rng = Rng::new(seed);
            let g = rng.unit_vector();
            let mut centres: Vec<Vec<f64>> = Vec::with_capacity(identities);
            for k in 0..identities {
                let u = rng.unit_vector();
                let fresh = normalised(mix(&[(COMMON_SHARE.sqrt(), &g), ((1.0 - COMMON_SHARE).sqrt(), &u)]));
                let centre = if k > 0 && rng.unit() < LOOKALIKE_SHARE {
                    let other = rng.below(k);
                    normalised(mix(&[(0.55, &centres[other]), (0.835, &fresh)]))
                } else {
                    fresh
                };
                centres.push(centre);
            }
            // (identity, embedding, quality)
            let mut made: Vec<(usize, Vec<f64>, f64)> = Vec::new();
            for (k, c) in centres.iter().enumerate() {
                let count = if rng.unit() < SINGLETON_SHARE {
                    1
                } else {
                    2 + rng.below(MAX_FACES - 1)
                };
                for _ in 0..count {
                    let kind = rng.unit();
                    let n = orthogonal(&mut rng, c);
                    let (e, quality) = if kind < OUTLIER_SHARE {
                        let a = rng.uniform(0.25, 0.45);
                        let mut e = mix(&[(a, c), ((1.0 - a * a).sqrt(), &n)]);
                        if identities > 1 && rng.unit() < 0.5 {
                            let other = (k + 1 + rng.below(identities - 1)) % identities;
                            let b = rng.uniform(0.3, 0.45);
                            e = mix(&[(1.0, &e), (b, &centres[other])]);
                        }
                        (normalised(e), rng.uniform(0.0, 0.3))
                    } else if kind < OUTLIER_SHARE + HARD_SHARE {
                        let a = rng.uniform(0.55, 0.72);
                        (mix(&[(a, c), ((1.0 - a * a).sqrt(), &n)]), rng.uniform(0.2, 0.6))
                    } else {
                        let a = rng.uniform(0.72, 0.90);
                        (mix(&[(a, c), ((1.0 - a * a).sqrt(), &n)]), rng.uniform(0.5, 1.0))
                    };
                    made.push((k, e, quality));
                }
            }
            // Photos: a random one that does not show this person yet (else a new one).
            let mut photos: Vec<Vec<usize>> = vec![Vec::new(); (made.len() * 7).div_ceil(10).max(1)];
            let mut photo_of = Vec::with_capacity(made.len());
            for (k, _, _) in &made {
                let start = rng.below(photos.len());
                let free = (0..photos.len())
                    .map(|o| (start + o) % photos.len())
                    .find(|&p| !photos[p].contains(k));
                let p = free.unwrap_or_else(|| {
                    photos.push(Vec::new());
                    photos.len() - 1
                });
                photos[p].push(*k);
                photo_of.push(p);
            }
            let mut order: Vec<usize> = (0..made.len()).collect();
            order.sort_by_key(|&i| (photo_of[i], i));
            let mut faces = Vec::with_capacity(made.len());
            let mut identity = Vec::with_capacity(made.len());
            for i in order {
                let (k, e, q) = &made[i];
                faces.push(FaceInput {
                    photo: photo_of[i],
                    embedding: e.iter().map(|&x| x as f32).collect(),
                    quality: *q as f32,
                });
                identity.push(*k);
            }
            // Photo numbers in face order, so that "first photo" reads naturally.
            let mut renumber: Vec<Option<usize>> = vec![None; photos.len()];
            let mut next = 0;
            for f in &mut faces {
                let p = *renumber[f.photo].get_or_insert_with(|| {
                    next += 1;
                    next - 1
                });
                f.photo = p;
            }
            Self { faces, identity }
        }

        pub fn embeddings(&self) -> Vec<Vec<f32>> {
            self.faces.iter().map(|f| f.embedding.clone()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::metrics::{adjusted_rand_index, labels_from_clusters, purity};
    use super::synthetic::SyntheticAlbum;
    use super::*;

    fn unit(angle_deg: f32, dims: usize, axis: usize) -> Vec<f32> {
        let mut v = vec![0.0; dims];
        let r = angle_deg.to_radians();
        v[axis] = r.cos();
        v[(axis + 1) % dims] = r.sin();
        v
    }

    fn face(photo: usize, embedding: Vec<f32>, quality: f32) -> FaceInput {
        FaceInput {
            photo,
            embedding,
            quality,
        }
    }

    #[test]
    fn two_people_and_a_stranger() {
        let faces = vec![
            face(0, unit(0.0, 8, 0), 0.5),
            face(1, unit(10.0, 8, 0), 0.9),
            face(2, unit(20.0, 8, 0), 0.1),
            face(3, unit(0.0, 8, 4), 0.3),
            face(4, unit(15.0, 8, 4), 0.3),
            face(5, unit(0.0, 8, 2), 1.0),
        ];
        let clusters = cluster_faces(&faces, &PeopleParams::default());
        assert_eq!(
            clusters,
            vec![
                Cluster {
                    faces: vec![0, 1, 2],
                    representative: 1
                },
                Cluster {
                    faces: vec![3, 4],
                    representative: 3
                },
            ]
        );
    }

    #[test]
    fn a_photo_appears_once_per_cluster() {
        // Faces 1 and 2 share photo 1; 1 is the closer to the group.
        let faces = vec![
            face(0, unit(0.0, 8, 0), 0.5),
            face(1, unit(5.0, 8, 0), 0.1),
            face(1, unit(35.0, 8, 0), 0.9),
            face(2, unit(10.0, 8, 0), 0.5),
        ];
        let clusters = cluster_faces(&faces, &PeopleParams::default());
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].faces, vec![0, 1, 3]);
    }

    #[test]
    fn a_bridge_face_does_not_merge_two_people() {
        // Two tight groups on axes 0 and 2 (cos 0 between them) and one face halfway: the
        // anchor chains all into one cluster, then drops it for its spread.
        let mut faces: Vec<FaceInput> = (0..5).map(|i| face(i, unit(i as f32 * 3.0, 8, 0), 0.5)).collect();
        faces.extend((5..9).map(|i| face(i, unit(i as f32 * 3.0, 8, 2), 0.5)));
        let s = std::f32::consts::FRAC_1_SQRT_2;
        faces.push(face(9, vec![s, 0.0, s, 0.0, 0.0, 0.0, 0.0, 0.0], 0.5));
        let ours = cluster_faces(&faces, &PeopleParams::default());
        let groups: Vec<_> = ours.iter().map(|c| c.faces.clone()).collect();
        // The bridge (cos 0.7 to both) goes with the larger group, on average the closer.
        assert_eq!(groups, vec![vec![0, 1, 2, 3, 4, 9], vec![5, 6, 7, 8]]);
        let embeddings: Vec<_> = faces.iter().map(|f| f.embedding.clone()).collect();
        assert!(anchor_clusters(&embeddings).is_empty());
    }

    #[test]
    fn unusable_embeddings_are_never_clustered() {
        let faces = vec![
            face(0, unit(0.0, 4, 0), 0.5),
            face(1, vec![f32::NAN, 0.0, 0.0, 0.0], 0.5),
            face(2, vec![0.0; 4], 0.5),
            face(3, vec![1.0, 0.0], 0.5),
            face(4, unit(5.0, 4, 0), f32::NAN),
        ];
        let clusters = cluster_faces(&faces, &PeopleParams::default());
        assert_eq!(
            clusters,
            vec![Cluster {
                faces: vec![0, 4],
                representative: 0
            }]
        );
        assert!(cluster_faces(&[], &PeopleParams::default()).is_empty());
        assert!(anchor_clusters(&[]).is_empty());
    }

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

    #[test]
    fn synthetic_albums_are_reproducible_and_have_the_documented_statistics() {
        let a = SyntheticAlbum::generate(60, 3);
        let b = SyntheticAlbum::generate(60, 3);
        assert_eq!(a.faces, b.faces);
        let mut within = Vec::new();
        let mut between = Vec::new();
        for i in 0..a.faces.len() {
            for j in i + 1..a.faces.len() {
                let s = dot(&a.faces[i].embedding, &a.faces[j].embedding);
                if a.identity[i] == a.identity[j] {
                    within.push(s);
                } else {
                    between.push(s);
                }
                if a.faces[i].photo == a.faces[j].photo {
                    assert_ne!(a.identity[i], a.identity[j]);
                }
            }
        }
        let median = |v: &mut Vec<f32>| {
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        let (w, bt) = (median(&mut within), median(&mut between));
        assert!((0.5..0.8).contains(&w), "within-person median cosine {w}");
        assert!((0.0..0.3).contains(&bt), "between-person median cosine {bt}");
    }
}

//! Duplicates, in tiers, each group around a keeper.
//!
//! - `exact`: the same bytes (content hash);
//! - `near`: perceptual hashes within 10 bits (the anchor's rule, OpenCV-compatible pHash);
//! - `similar`: CLIP embeddings with cosine ≥ a threshold (a burst of the same scene).
//!
//! The anchor grouped by single linkage (connected components), so A~B and B~C put A and
//! C together however different they were, and it kept no photo: the app hid them all.
//! Here photos are taken best first; each unassigned photo opens a group as its keeper and
//! takes every unassigned photo close to it, plus photos near one of those members that are
//! still within [`LINKED_HAMMING`] bits of the keeper: every member stays close to its keeper
//! (no chains across a burst), and the keeper is the best photo of its group by construction.

use serde::Serialize;
use utoipa::ToSchema;

use super::FeatureRecord;
use super::quality::QualityVerdict;
use crate::domain::ContentHash;
use crate::image::features::hamming;

/// The anchor's DBSCAN radius on 64-bit pHash Hamming distances (inclusive).
pub const NEAR_HAMMING: u32 = 10;
/// Two photos are `similar` only if shot within this many seconds of each other, when both
/// carry an EXIF capture time: the same scene on another day is another photo, not a retake.
pub const SIMILAR_WITHIN_SECONDS: i64 = 10 * 60;
/// A photo near (≤ [`NEAR_HAMMING`]) to a member may join through it, but only while it is
/// within this many bits of the keeper itself: a bounded chain, where the anchor's chains
/// were unbounded. Crops and rotations drift further from the original than re-encodes do.
pub const LINKED_HAMMING: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Exact,
    Near,
    Similar,
}

/// What the grouping needs of one photo.
#[derive(Debug, Clone)]
pub struct DupPhoto {
    pub hash: ContentHash,
    pub phash: u64,
    /// L2-normalised CLIP embedding, when available.
    pub embedding: Option<Vec<f32>>,
    /// Higher is better: decides the keeper (quality, aesthetic score, resolution).
    pub rank: f64,
    /// EXIF capture time (naive seconds), when the photo has one.
    pub captured_at: Option<i64>,
}

/// Keeper rank ([`DupPhoto::rank`]): a photo that passes the quality tests beats one that
/// fails; then the aesthetic score; then sharpness and resolution (log scales, so neither
/// dominates).
pub fn keeper_rank(record: &FeatureRecord, verdict: &QualityVerdict, aesthetic: Option<f32>) -> f64 {
    let quality = if verdict.low_quality { 0.0 } else { 1000.0 };
    let aesthetic = aesthetic.map_or(0.0, |s| f64::from(s) * 10.0);
    let sharpness = (record.blur_variance.max(0.0) + 1.0).log10();
    let pixels = (f64::from(record.width) * f64::from(record.height) + 1.0).log10() * 0.5;
    quality + aesthetic + sharpness + pixels
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Member {
    /// Index into the input.
    pub index: usize,
    pub tier: Tier,
    pub hamming: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub keeper: usize,
    /// The other members, closest first.
    pub members: Vec<Member>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise the loop (a single running
    // sum cannot be reordered, so it would stay scalar).
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// Unknown capture times never rule a pair out; known ones must be close.
fn close_in_time(a: &DupPhoto, b: &DupPhoto) -> bool {
    match (a.captured_at, b.captured_at) {
        (Some(x), Some(y)) => (x - y).abs() <= SIMILAR_WITHIN_SECONDS,
        _ => true,
    }
}

/// How `other` relates to `keeper`, if it is a duplicate of it.
fn relation(keeper: &DupPhoto, other: &DupPhoto, similar_cosine: f32) -> Option<Member> {
    let h = hamming(keeper.phash, other.phash);
    let cosine = match (&keeper.embedding, &other.embedding) {
        (Some(a), Some(b)) if a.len() == b.len() => Some(dot(a, b)),
        _ => None,
    };
    let tier = if keeper.hash == other.hash {
        Tier::Exact
    } else if h <= NEAR_HAMMING {
        Tier::Near
    } else if cosine.is_some_and(|c| c >= similar_cosine) && close_in_time(keeper, other) {
        Tier::Similar
    } else {
        return None;
    };
    Some(Member {
        index: 0,
        tier,
        hamming: h,
        cosine,
    })
}

/// Every related pair `(i, j, member-of-i's-group-if-i-keeps)`, found tile by tile (so the
/// embeddings of both tiles stay in cache) on every core. All pairs are needed for the CLIP
/// tier; 10 000 photos are 50 M pairs, about a second of arithmetic on two cores.
fn related_pairs(photos: &[DupPhoto], similar_cosine: f32) -> Vec<Vec<Member>> {
    const TILE: usize = 64;
    let n = photos.len();
    let tiles = n.div_ceil(TILE);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(tiles.max(1));
    let mut per_thread: Vec<Vec<(usize, Member)>> = vec![Vec::new(); threads];
    std::thread::scope(|scope| {
        for (t, out) in per_thread.iter_mut().enumerate() {
            scope.spawn(move || {
                // Row tiles dealt round-robin: the triangle's rows shrink, so this balances.
                for ti in (t..tiles).step_by(threads) {
                    for tj in ti..tiles {
                        for i in ti * TILE..((ti + 1) * TILE).min(n) {
                            let j_start = if ti == tj { i + 1 } else { tj * TILE };
                            for j in j_start..((tj + 1) * TILE).min(n) {
                                if let Some(mut m) = relation(&photos[i], &photos[j], similar_cosine) {
                                    m.index = j;
                                    out.push((i, m));
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    let mut neighbours: Vec<Vec<Member>> = vec![Vec::new(); n];
    for (i, m) in per_thread.into_iter().flatten() {
        let j = m.index;
        neighbours[j].push(Member { index: i, ..m.clone() });
        neighbours[i].push(m);
    }
    neighbours
}

/// Groups of two or more photos, keepers first in rank order. `similar_cosine` > 1 turns
/// the CLIP tier off.
pub fn group(photos: &[DupPhoto], similar_cosine: f32) -> Vec<Group> {
    let neighbours = related_pairs(photos, similar_cosine);
    let mut order: Vec<usize> = (0..photos.len()).collect();
    // Best first; ties keep input order, so the same input always gives the same groups.
    order.sort_by(|&a, &b| photos[b].rank.total_cmp(&photos[a].rank).then(a.cmp(&b)));
    let mut assigned = vec![false; photos.len()];
    let mut groups = Vec::new();
    for &k in &order {
        if assigned[k] {
            continue;
        }
        assigned[k] = true;
        let mut members: Vec<Member> = neighbours[k].iter().filter(|m| !assigned[m.index]).cloned().collect();
        if members.is_empty() {
            continue;
        }
        for m in &members {
            assigned[m.index] = true;
        }
        // One bounded step further: near a member, and still close to the keeper.
        let mut linked = Vec::new();
        for m in &members {
            for n in &neighbours[m.index] {
                let h = hamming(photos[k].phash, photos[n.index].phash);
                if !assigned[n.index] && n.tier <= Tier::Near && h <= LINKED_HAMMING {
                    assigned[n.index] = true;
                    linked.push(Member {
                        index: n.index,
                        tier: Tier::Near,
                        hamming: h,
                        cosine: None,
                    });
                }
            }
        }
        members.extend(linked);
        members.sort_by(|a, b| {
            a.tier
                .cmp(&b.tier)
                .then(a.hamming.cmp(&b.hamming))
                .then(a.index.cmp(&b.index))
        });
        groups.push(Group { keeper: k, members });
    }
    groups
}

/// The anchor's algorithm, for side-by-side evaluation: connected components of the graph
/// "pHash Hamming ≤ 10" (DBSCAN with eps 10, min_samples 2), singletons dropped, groups in
/// order of first appearance.
pub fn anchor_groups(phashes: &[u64]) -> Vec<Vec<usize>> {
    let n = phashes.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for i in 0..n {
        for j in i + 1..n {
            if hamming(phashes[i], phashes[j]) <= NEAR_HAMMING {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        match groups.iter_mut().find(|(r, _)| *r == root) {
            Some((_, g)) => g.push(i),
            None => groups.push((root, vec![i])),
        }
    }
    groups.into_iter().map(|(_, g)| g).filter(|g| g.len() > 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(n: u8, phash: u64, embedding: Option<Vec<f32>>, rank: f64) -> DupPhoto {
        DupPhoto {
            hash: ContentHash::of(&[n]),
            phash,
            embedding,
            rank,
            captured_at: None,
        }
    }

    #[test]
    fn the_similar_tier_needs_close_capture_times_when_known() {
        let e = Some(vec![1.0, 0.0]);
        let at = |t: Option<i64>, n: u8| DupPhoto {
            captured_at: t,
            ..photo(n, u64::from(n) * 0x0F0F_0F0F_0F0F_0F0F, e.clone(), f64::from(n))
        };
        // Same scene (cosine 1), pHash far apart: a retake a minute later is similar…
        assert_eq!(group(&[at(Some(0), 1), at(Some(60), 2)], 0.95).len(), 1);
        // …the same view a day later is not…
        assert!(group(&[at(Some(0), 1), at(Some(86_400), 2)], 0.95).is_empty());
        // …and without a capture time the cosine alone decides.
        assert_eq!(group(&[at(None, 1), at(Some(86_400), 2)], 0.95).len(), 1);
    }

    #[test]
    fn tiers_and_the_best_photo_keeps() {
        let e = |x: f32| Some(vec![x, (1.0 - x * x).sqrt()]);
        let mut p = vec![
            photo(0, 0, e(1.0), 1.0),
            photo(1, 0b111, e(0.0), 5.0),      // 3 bits from #0: near, and the best photo
            photo(2, u64::MAX, e(0.999), 0.5), // far pHash, cosine 0.999 with #0
            photo(3, 0xF0F0_F0F0_F0F0_F0F0, e(0.6), 0.1), // unrelated to all
        ];
        p.push(DupPhoto {
            hash: p[2].hash,
            ..photo(4, 0x00FF_00FF_00FF_00FF, e(-1.0), 0.0)
        }); // the same bytes as #2
        let groups = group(&p, 0.95);
        let shape: Vec<(usize, Vec<(usize, Tier)>)> = groups
            .iter()
            .map(|g| (g.keeper, g.members.iter().map(|m| (m.index, m.tier)).collect()))
            .collect();
        // #1 keeps #0 (near); #0 is taken, so #2 cannot join through it; #2 keeps #4 (exact).
        assert_eq!(shape, vec![(1, vec![(0, Tier::Near)]), (2, vec![(4, Tier::Exact)])]);
    }

    #[test]
    fn chains_are_bounded_by_the_distance_to_the_keeper() {
        // a–b 6 bits, b–c 6 bits (a–c 12), c–d 6 bits (a–d 18).
        let a = 0u64;
        let b = 0b11_1111u64;
        let c = 0b1111_1111_1111u64;
        let d = 0b11_1111_1111_1111_1111u64;
        assert_eq!(
            anchor_groups(&[a, b, c, d]),
            vec![vec![0, 1, 2, 3]],
            "the anchor chains all four"
        );
        let p = vec![
            photo(0, a, None, 4.0),
            photo(1, b, None, 3.0),
            photo(2, c, None, 2.0),
            photo(3, d, None, 1.0),
        ];
        let g = group(&p, 2.0);
        assert_eq!(g[0].keeper, 0);
        let members: Vec<usize> = g[0].members.iter().map(|m| m.index).collect();
        assert_eq!(
            members,
            vec![1, 2],
            "c joins through b (12 bits from a); d, 18 bits away, does not"
        );
        assert!(g[0].members.iter().all(|m| m.hamming <= LINKED_HAMMING));
    }
}

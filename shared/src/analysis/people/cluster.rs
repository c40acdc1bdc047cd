//! The passes of [`cluster_faces`](super::cluster_faces) after the neighbour graph: one
//! DBSCAN round, then the validation of each group it forms (average-linkage split, medoid
//! radius, one face per photo). The algorithm and its thresholds are documented in the
//! parent module.

use std::cmp::Ordering;

use super::{FaceInput, PeopleParams, quality_of};

/// DBSCAN clusters larger than this are not split (the split holds a k×k matrix: 64 MB
/// at this size); they still get the medoid and one-face-per-photo passes.
const MAX_SPLIT: usize = 4096;

/// One DBSCAN pass over `pool` (face indices, ascending): core links within
/// `core_distance`, non-core faces to their nearest core within `border_distance`, no link
/// inside a photo. Returns the groups (indices ascending) in the order of their first core.
pub(super) fn dbscan_round(
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
pub(super) fn refine(
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

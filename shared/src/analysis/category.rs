//! Categories: the anchor's zero-shot algorithm over CLIP embeddings, with its defects fixed.
//!
//! 1. Similarity `S[n,c]` = the photo's normalised embedding · the tag's mean prompt
//!    embedding (= the mean over prompts of the cosines, as the anchor computed it).
//! 2. Per photo, its top `k = min(10, tags)` tags with `S ≥ floor` (the anchor's floor was
//!    0, so nothing was ever "other" for a reason; and `topk(10)` crashed below 10 tags).
//! 3. Representativeness `R[c] = Σ S + 0.5 · Σ_{S > 0.28} S` over the photos whose top list
//!    holds `c`; the top 5 tags by `R` are the album's representatives (stable order).
//! 4. Each photo goes to the first representative in its top list, else to "other".
//! 5. Re-representative pass: per group, recompute `R` on its photos; if another tag wins,
//!    its photos move to that tag when it is in their top list, else to "other".
//!
//! Tags are indexed by id, never by name, so two tags with one name cannot add up into
//! the first (the anchor's `list.index` bug).

use super::taxonomy::Tag;

/// The anchor's constants.
pub const TOP_K: usize = 10;
pub const BOOST_THRESHOLD: f32 = 0.28;
pub const BOOST_WEIGHT: f32 = 0.5;
pub const REPRESENTATIVES: usize = 5;

/// One candidate tag with the mean of its normalised prompt embeddings.
#[derive(Debug, Clone)]
pub struct TagVector {
    pub name: String,
    pub vector: Vec<f32>,
}

/// Output groups: `Some(tag index)` or `None` for "other", each with photo indices in input order.
pub type Assignment = Vec<(Option<usize>, Vec<usize>)>;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Tags reported for one photo on its own, as the per-photo `category` step answers it.
pub const TAGS_PER_PHOTO: usize = 3;

/// One photo's best `n` tags with similarity ≥ `floor`: (tag index, similarity), best first,
/// ties in tag order. The album's top lists and the per-photo step both use it.
pub fn top_tags(embedding: &[f32], tags: &[TagVector], floor: f32, n: usize) -> Vec<(usize, f32)> {
    let mut sims: Vec<(usize, f32)> = tags
        .iter()
        .enumerate()
        .map(|(c, t)| (c, dot(embedding, &t.vector)))
        .filter(|(_, s)| *s >= floor)
        .collect();
    sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    sims.truncate(n);
    sims
}

/// Per photo: (tag, similarity) pairs, best first, at most `TOP_K`, all ≥ `floor`.
fn top_lists(embeddings: &[&[f32]], tags: &[TagVector], floor: f32) -> Vec<Vec<(usize, f32)>> {
    let k = TOP_K.min(tags.len());
    embeddings.iter().map(|e| top_tags(e, tags, floor, k)).collect()
}

fn representativeness(lists: &[&Vec<(usize, f32)>], tags: usize) -> Vec<f32> {
    let mut r = vec![0.0f32; tags];
    for list in lists {
        for &(c, s) in list.iter() {
            r[c] += s;
            if s > BOOST_THRESHOLD {
                r[c] += BOOST_WEIGHT * s;
            }
        }
    }
    r
}

/// Indices of the `n` largest values, ties in index order.
fn top_indices(r: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..r.len()).filter(|&c| r[c] > 0.0).collect();
    idx.sort_by(|&a, &b| r[b].total_cmp(&r[a]).then(a.cmp(&b)));
    idx.truncate(n);
    idx
}

/// Groups photos (normalised embeddings) under tags. Deterministic.
pub fn categorize(embeddings: &[&[f32]], tags: &[TagVector], floor: f32) -> Assignment {
    let lists = top_lists(embeddings, tags, floor);
    let all: Vec<&Vec<(usize, f32)>> = lists.iter().collect();
    let reps = top_indices(&representativeness(&all, tags.len()), REPRESENTATIVES);

    // First pass, in representative order of first appearance.
    let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
    let push = |groups: &mut Vec<(Option<usize>, Vec<usize>)>, key: Option<usize>, photo: usize| match groups
        .iter_mut()
        .find(|(k, _)| *k == key)
    {
        Some((_, v)) => v.push(photo),
        None => groups.push((key, vec![photo])),
    };
    for (n, list) in lists.iter().enumerate() {
        let tag = list.iter().map(|(c, _)| *c).find(|c| reps.contains(c));
        push(&mut groups, tag, n);
    }

    // Re-representative pass.
    let mut result: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
    for (key, photos) in groups {
        let Some(g) = key else {
            for p in photos {
                push(&mut result, None, p);
            }
            continue;
        };
        let members: Vec<&Vec<(usize, f32)>> = photos.iter().map(|&p| &lists[p]).collect();
        let winner = top_indices(&representativeness(&members, tags.len()), 1)
            .first()
            .copied();
        match winner {
            Some(w) if w != g => {
                for p in photos {
                    let target = lists[p].iter().any(|(c, _)| *c == w).then_some(w);
                    push(&mut result, target, p);
                }
            }
            _ => {
                for p in photos {
                    push(&mut result, Some(g), p);
                }
            }
        }
    }
    for (_, photos) in &mut result {
        photos.sort_unstable();
    }
    result.retain(|(_, p)| !p.is_empty());
    result
}

/// An album's candidate tags with their text vectors: what photos are assigned to.
pub struct CategoryTags {
    tags: Vec<Tag>,
    vectors: Vec<TagVector>,
    other_name: String,
    floor: f32,
}

impl CategoryTags {
    /// `vectors[i]` is `tags[i]`'s; `other_name` names photos that fit no tag; `floor` is the
    /// similarity below which no tag is assigned.
    pub fn new(tags: Vec<Tag>, vectors: Vec<TagVector>, other_name: String, floor: f32) -> Self {
        Self {
            tags,
            vectors,
            other_name,
            floor,
        }
    }

    /// `(display name, photo indices)` per category, in [`category::categorize`]'s order; photos
    /// that fit no tag go under the taxonomy's name for "other" (`기타`).
    pub fn assign(&self, embeddings: &[&[f32]]) -> Vec<(String, Vec<usize>)> {
        categorize(embeddings, &self.vectors, self.floor)
            .into_iter()
            .map(|(tag, members)| {
                let name = tag.map_or_else(|| self.other_name.clone(), |t| self.tags[t].name.clone());
                (name, members)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn tag(name: &str, v: &[f32]) -> TagVector {
        TagVector {
            name: name.into(),
            vector: unit(v),
        }
    }

    #[test]
    fn photos_go_to_their_tags_and_weak_matches_to_other() {
        let tags = vec![tag("food", &[1.0, 0.0, 0.0]), tag("sky", &[0.0, 1.0, 0.0])];
        let photos: Vec<Vec<f32>> = vec![
            unit(&[0.9, 0.1, 0.0]),
            unit(&[0.1, 0.9, 0.0]),
            unit(&[0.8, 0.2, 0.1]),
            unit(&[0.0, 0.05, 1.0]), // far from both: below the floor
        ];
        let refs: Vec<&[f32]> = photos.iter().map(Vec::as_slice).collect();
        let groups = categorize(&refs, &tags, 0.3);
        assert_eq!(groups, vec![(Some(0), vec![0, 2]), (Some(1), vec![1]), (None, vec![3])]);
    }

    #[test]
    fn fewer_than_ten_tags_and_duplicate_names_work() {
        let tags = vec![tag("같은 이름", &[1.0, 0.0]), tag("같은 이름", &[0.0, 1.0])];
        let photos = [unit(&[1.0, 0.1]), unit(&[0.1, 1.0])];
        let refs: Vec<&[f32]> = photos.iter().map(Vec::as_slice).collect();
        let groups = categorize(&refs, &tags, 0.0);
        assert_eq!(groups, vec![(Some(0), vec![0]), (Some(1), vec![1])]);
        assert!(categorize(&[], &tags, 0.0).is_empty());
    }

    #[test]
    fn a_photos_top_tags_are_the_best_above_the_floor() {
        let tags = vec![
            tag("a", &[1.0, 0.0]),
            tag("b", &[0.0, 1.0]),
            tag("c", &[1.0, 1.0]),
            tag("d", &[-1.0, 0.0]),
        ];
        let photo = unit(&[1.0, 0.2]);
        let top = top_tags(&photo, &tags, 0.1, 2);
        assert_eq!(top.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
        assert!(top[0].1 > top[1].1);
        let all = top_tags(&photo, &tags, 0.1, TAGS_PER_PHOTO);
        assert_eq!(all.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2, 1]);
        assert!(top_tags(&photo, &tags, 0.99, TAGS_PER_PHOTO).is_empty());
    }
}

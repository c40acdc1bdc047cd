//! People clustering on synthetic albums with known identities, scored against the truth
//! and against the anchor's algorithm.

use ongi_shared::analysis::people::{Cluster, FaceInput, PeopleParams, anchor_clusters, cluster_faces};

use super::metrics::{adjusted_rand_index, labels_from_clusters};
use super::synthetic::SyntheticAlbum;

fn groups(clusters: &[Cluster]) -> Vec<Vec<usize>> {
    clusters.iter().map(|c| c.faces.clone()).collect()
}

fn ari(album: &SyntheticAlbum, clusters: &[Vec<usize>]) -> f64 {
    adjusted_rand_index(&album.identity, &labels_from_clusters(album.faces.len(), clusters))
}

/// Well separated people: 6 identities, 5 faces each, faces at cos ≈ 0.9 to their centre,
/// centres orthogonal.
#[test]
fn well_separated_people_are_found_exactly() {
    let mut faces = Vec::new();
    let mut truth = Vec::new();
    for k in 0..6 {
        for j in 0..5 {
            let mut e = vec![0.0f32; 64];
            e[k * 10] = 0.9;
            e[k * 10 + 1 + j] = (1.0f32 - 0.81).sqrt();
            faces.push(FaceInput {
                photo: faces.len(),
                embedding: e,
                quality: j as f32,
            });
            truth.push(k);
        }
    }
    let clusters = cluster_faces(&faces, &PeopleParams::default());
    let labels = labels_from_clusters(faces.len(), &groups(&clusters));
    assert!((adjusted_rand_index(&truth, &labels) - 1.0).abs() < 1e-12);
    for c in &clusters {
        assert_eq!(c.representative, c.faces[4], "the best quality face represents");
    }
}

#[test]
fn ours_beats_the_anchor_on_hard_albums() {
    for (identities, seed) in [(20, 11), (100, 12)] {
        let album = SyntheticAlbum::generate(identities, seed);
        let ours = ari(&album, &groups(&cluster_faces(&album.faces, &PeopleParams::default())));
        let anchor = ari(&album, &anchor_clusters(&album.embeddings()));
        assert!(
            ours >= anchor,
            "{identities} people, seed {seed}: ARI {ours} < anchor {anchor}"
        );
        assert!(ours > 0.8, "{identities} people, seed {seed}: ARI {ours}");
    }
}

#[test]
fn clusters_are_deterministic_sorted_and_list_a_photo_once() {
    let album = SyntheticAlbum::generate(60, 7);
    let clusters = cluster_faces(&album.faces, &PeopleParams::default());
    assert!(!clusters.is_empty());
    assert_eq!(clusters, cluster_faces(&album.faces, &PeopleParams::default()));
    let first_photo = |c: &Cluster| c.faces.iter().map(|&i| album.faces[i].photo).min();
    for pair in clusters.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            a.faces.len() > b.faces.len() || (a.faces.len() == b.faces.len() && first_photo(a) <= first_photo(b)),
            "order: {:?} then {:?}",
            a.faces,
            b.faces
        );
    }
    let mut seen = vec![false; album.faces.len()];
    for c in &clusters {
        assert!(c.faces.len() >= 2);
        assert!(c.faces.windows(2).all(|w| w[0] < w[1]));
        let mut photos: Vec<usize> = c.faces.iter().map(|&i| album.faces[i].photo).collect();
        photos.sort_unstable();
        photos.dedup();
        assert_eq!(photos.len(), c.faces.len(), "a photo twice in {:?}", c.faces);
        for &i in &c.faces {
            assert!(!seen[i], "face {i} in two clusters");
            seen[i] = true;
        }
        let best = c.faces.iter().copied().max_by(|&a, &b| {
            album.faces[a]
                .quality
                .total_cmp(&album.faces[b].quality)
                .then(b.cmp(&a))
        });
        assert_eq!(Some(c.representative), best);
    }
    // The anchor does list a photo twice when two of its faces fall into one cluster; ours
    // keeps the face closer to the person: two faces of one photo.
    let mut faces = album.faces.clone();
    let twin = FaceInput {
        photo: faces[clusters[0].faces[0]].photo,
        ..faces[clusters[0].faces[1]].clone()
    };
    faces.push(twin);
    let again = cluster_faces(&faces, &PeopleParams::default());
    for c in &again {
        let mut photos: Vec<usize> = c.faces.iter().map(|&i| faces[i].photo).collect();
        photos.sort_unstable();
        photos.dedup();
        assert_eq!(photos.len(), c.faces.len());
    }
}

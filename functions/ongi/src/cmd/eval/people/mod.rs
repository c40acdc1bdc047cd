//! `ongi eval people [--identities N] [--seed S]`: people clustering, Ongi's
//! ([`people::cluster_faces`]) and the anchor's ([`people::anchor_clusters`]), on synthetic
//! albums with known identities, side by side, one JSON line per (system, setting).
//!
//! Data: [`synthetic::SyntheticAlbum`] (documented there): 128-d unit embeddings
//! with SFace-like cosines — two faces of one person around 0.5–0.8, of two people around
//! 0–0.3 — 1–12 faces per person (a quarter of them strangers with one face), hard faces
//! (profile, blur), very hard outliers (some pulled towards another person), look-alike
//! people, and group photos (a person at most once per photo).
//!
//! Settings: 20 and 100 identities (or `--identities N` alone), each on seeds S, S+1, S+2;
//! each line reports medians over the three seeds:
//! - `ari`: adjusted Rand index against the true identities (unclustered faces count as
//!   singletons, so a stranger left out is right, a person left out is wrong);
//! - `purity`: share of clustered faces that belong to their cluster's majority identity;
//! - `clusters` (and `true_clusters`: identities with two faces or more), `noise_fraction`
//!   (faces in no cluster; `true_singleton_fraction` is the floor a perfect system would show).
//!
//! - [`synthetic`]: the album generator.
//! - [`metrics`]: ARI, purity and labels from clusters.

mod metrics;
mod synthetic;
#[cfg(test)]
mod tests;

use metrics::{adjusted_rand_index, labels_from_clusters, purity};
use ongi_shared::analysis::people::{self, PeopleParams};
use serde_json::json;
use synthetic::SyntheticAlbum;

/// One system's scores on one album.
struct Scores {
    ari: f64,
    purity: Option<f64>,
    clusters: usize,
    noise_fraction: f64,
}

fn score(album: &SyntheticAlbum, clusters: &[Vec<usize>]) -> Scores {
    let n = album.faces.len();
    let predicted = labels_from_clusters(n, clusters);
    let clustered: usize = clusters.iter().map(Vec::len).sum();
    Scores {
        ari: adjusted_rand_index(&album.identity, &predicted),
        purity: purity(&album.identity, clusters),
        clusters: clusters.len(),
        noise_fraction: if n == 0 { 0.0 } else { 1.0 - clustered as f64 / n as f64 },
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

fn round4(x: Option<f64>) -> Option<f64> {
    x.map(|v| (v * 1e4).round() / 1e4)
}

pub fn run(identities: Option<usize>, seed: u64) -> anyhow::Result<()> {
    let settings: Vec<usize> = match identities {
        Some(n) => vec![n],
        None => vec![20, 100],
    };
    if settings.contains(&0) {
        anyhow::bail!("--identities must be at least 1");
    }
    let params = PeopleParams::default();
    for n in settings {
        let seeds: Vec<u64> = (0..3).map(|i| seed.wrapping_add(i)).collect();
        let albums: Vec<SyntheticAlbum> = seeds.iter().map(|&s| SyntheticAlbum::generate(n, s)).collect();
        let faces: Vec<usize> = albums.iter().map(|a| a.faces.len()).collect();
        let truth: Vec<(f64, f64)> = albums
            .iter()
            .map(|a| {
                let mut counts = vec![0usize; n];
                a.identity.iter().for_each(|&k| counts[k] += 1);
                let multi = counts.iter().filter(|&&c| c >= 2).count() as f64;
                let single = counts.iter().filter(|&&c| c == 1).count() as f64;
                (multi, single / a.faces.len().max(1) as f64)
            })
            .collect();
        for system in ["ongi", "anchor"] {
            let scores: Vec<Scores> = albums
                .iter()
                .map(|a| {
                    let clusters: Vec<Vec<usize>> = if system == "ongi" {
                        people::cluster_faces(&a.faces, &params)
                            .into_iter()
                            .map(|c| c.faces)
                            .collect()
                    } else {
                        people::anchor_clusters(&a.embeddings())
                    };
                    score(a, &clusters)
                })
                .collect();
            let line = json!({
                "eval": "people",
                "system": system,
                "identities": n,
                "seeds": seeds,
                "faces": faces,
                "ari": round4(median(scores.iter().map(|s| s.ari).collect())),
                "ari_per_seed": scores.iter().map(|s| round4(Some(s.ari))).collect::<Vec<_>>(),
                "purity": round4(median(scores.iter().filter_map(|s| s.purity).collect())),
                "clusters": median(scores.iter().map(|s| s.clusters as f64).collect()),
                "true_clusters": median(truth.iter().map(|t| t.0).collect()),
                "noise_fraction": round4(median(scores.iter().map(|s| s.noise_fraction).collect())),
                "true_singleton_fraction": round4(median(truth.iter().map(|t| t.1).collect())),
            });
            println!("{line}");
        }
    }
    Ok(())
}

//! `ongi eval blur|duplicates --data DIR`: Ongi's decisions and the anchor's algorithm on
//! the same labelled photos (made by `eval/make_eval_sets.py`), side by side, as JSON lines.
//!
//! The anchor is reproduced exactly where it can be: blur = variance of the Laplacian of the
//! full-resolution gray image at a 300 px long side (`INTER_AREA`) below 80; duplicates =
//! connected components of "pHash Hamming ≤ 10" on full-resolution gray images. Ongi's side
//! is what the service does: one reduced-scale decode, its quality verdict, its tiers around
//! a keeper. (The CLIP-based parts need real weights, which these machines cannot download,
//! so they are off here: `similar` tier and CLIP quality prompts.)

pub mod people;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use ongi_shared::analysis::duplicate::{DupPhoto, anchor_groups, group};
use ongi_shared::analysis::quality::assess;
use ongi_shared::config::{IngestLimits, QualityThresholds};
use ongi_shared::domain::ContentHash;
use ongi_shared::image::features::{laplacian_variance, phash, to_gray};
use ongi_shared::image::{DecodeOptions, decode};
use ongi_shared::pipeline::pixels::pixel_features;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct BlurLabel {
    sigma: f64,
    blurry: bool,
}

#[derive(Deserialize)]
struct DupLabel {
    group: String,
    kind: String,
}

fn labels<T: for<'de> Deserialize<'de>>(dir: &Path) -> anyhow::Result<BTreeMap<String, T>> {
    let path = dir.join("labels.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The anchor's view of one photo: full-resolution gray.
fn anchor_gray(bytes: &[u8]) -> anyhow::Result<image::GrayImage> {
    let full = decode(bytes, &IngestLimits::default(), DecodeOptions::default())?;
    Ok(to_gray(&full.pixels))
}

#[derive(Default)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
}

impl Counts {
    fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    fn json(&self) -> serde_json::Value {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
        json!({"precision": p, "recall": r, "f1": f1, "tp": self.tp, "fp": self.fp, "fn": self.fn_, "tn": self.tn})
    }
}

pub fn blur(data: &Path) -> anyhow::Result<()> {
    let dir = data.join("blur");
    let labels: BTreeMap<String, BlurLabel> = labels(&dir)?;
    let thresholds = QualityThresholds {
        clip_probability: 0.0,
        ..QualityThresholds::default()
    };
    let (mut ours, mut anchor) = (Counts::default(), Counts::default());
    let mut per_sigma: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for (file, label) in &labels {
        let bytes = std::fs::read(dir.join(file))?;
        let verdict = assess(
            &pixel_features(&bytes, &IngestLimits::default(), false)?.record,
            None,
            &thresholds,
        );
        let ours_blurry = verdict.reasons.contains(&"blurry");
        let anchor_blurry = laplacian_variance(&anchor_gray(&bytes)?) < 80.0;
        ours.add(ours_blurry, label.blurry);
        anchor.add(anchor_blurry, label.blurry);
        let e = per_sigma.entry(format!("{}", label.sigma)).or_default();
        e.0 += 1;
        e.1 += u64::from(ours_blurry);
        e.2 += u64::from(anchor_blurry);
    }
    for (sigma, (n, o, a)) in &per_sigma {
        println!(
            "{}",
            json!({"eval": "blur", "sigma": sigma, "photos": n, "ours_flagged": o, "anchor_flagged": a})
        );
    }
    println!(
        "{}",
        json!({"eval": "blur", "system": "ongi", "photos": labels.len(), "scores": ours.json()})
    );
    println!(
        "{}",
        json!({"eval": "blur", "system": "anchor", "photos": labels.len(), "scores": anchor.json()})
    );
    Ok(())
}

/// Pairwise precision and recall of a grouping against the labels.
fn pairwise(groups_of: &[Option<usize>], truth: &[&str]) -> Counts {
    let mut c = Counts::default();
    for i in 0..truth.len() {
        for j in i + 1..truth.len() {
            let predicted = matches!((groups_of[i], groups_of[j]), (Some(a), Some(b)) if a == b);
            c.add(predicted, truth[i] == truth[j]);
        }
    }
    c
}

pub fn duplicates(data: &Path) -> anyhow::Result<()> {
    let dir = data.join("dups");
    let labels: BTreeMap<String, DupLabel> = labels(&dir)?;
    let files: Vec<&String> = labels.keys().collect();
    let truth: Vec<&str> = labels.values().map(|l| l.group.as_str()).collect();
    let mut ours_input = Vec::new();
    let mut anchor_hashes = Vec::new();
    for file in &files {
        let bytes = std::fs::read(dir.join(file))?;
        let a = pixel_features(&bytes, &IngestLimits::default(), false)?;
        let verdict = assess(&a.record, None, &QualityThresholds::default());
        ours_input.push(DupPhoto {
            hash: ContentHash::of(&bytes),
            phash: a.record.phash,
            embedding: None,
            captured_at: a.record.captured_at,
            rank: if verdict.low_quality { 0.0 } else { 1000.0 } + (a.record.blur_variance + 1.0).log10(),
        });
        anchor_hashes.push(phash(&anchor_gray(&bytes)?));
    }
    let mut ours_of = vec![None; files.len()];
    for (g, grp) in group(&ours_input, 2.0).iter().enumerate() {
        ours_of[grp.keeper] = Some(g);
        grp.members.iter().for_each(|m| ours_of[m.index] = Some(g));
    }
    let mut anchor_of = vec![None; files.len()];
    for (g, members) in anchor_groups(&anchor_hashes).iter().enumerate() {
        members.iter().for_each(|&i| anchor_of[i] = Some(g));
    }
    // Recall per augmentation kind: is the variant grouped with its original?
    let mut by_kind: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let kind = labels[*f].kind.as_str();
        if kind == "orig" {
            continue;
        }
        let orig = files
            .iter()
            .position(|o| labels[*o].kind == "orig" && labels[*o].group == labels[*f].group);
        let same = |of: &[Option<usize>], o: Option<usize>| {
            o.is_some_and(|o| matches!((of[i], of[o]), (Some(a), Some(b)) if a == b))
        };
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += u64::from(same(&ours_of, orig));
        e.2 += u64::from(same(&anchor_of, orig));
    }
    for (kind, (n, o, a)) in &by_kind {
        println!(
            "{}",
            json!({"eval": "duplicates", "kind": kind, "variants": n, "ours_with_original": o, "anchor_with_original": a})
        );
    }
    let groups = |of: &[Option<usize>]| of.iter().flatten().collect::<std::collections::HashSet<_>>().len();
    println!(
        "{}",
        json!({"eval": "duplicates", "system": "ongi", "photos": files.len(), "groups": groups(&ours_of),
               "pairwise": pairwise(&ours_of, &truth).json()})
    );
    println!(
        "{}",
        json!({"eval": "duplicates", "system": "anchor", "photos": files.len(), "groups": groups(&anchor_of),
               "pairwise": pairwise(&anchor_of, &truth).json()})
    );
    Ok(())
}

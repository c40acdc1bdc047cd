//! What `ongi analyze` writes: `report.json` (the analyses, in the shapes the album routes
//! answer with `?detail=true`) and `report.html` (the same, as pictures; [`html`]).
//!
//! The pictures (thumbnails and face crops, [`pictures`]) go into the HTML only, as `data:`
//! URIs, so the page is one self-contained file; `report.json` stays small and names photos
//! by their path inside the analysed folder.

pub mod html;
pub mod pictures;

use std::path::Path;

use anyhow::Context;
use ongi_shared::album::{CategoryGroup, DuplicateGroup, InvalidImage, Person, QualityDetail, ScoredCategory};
use serde::Serialize;

/// Bumped when a field changes meaning or goes away.
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: u32,
    /// The analysed folder (absolute).
    pub folder: String,
    /// Seconds since 1970 (UTC) when the run finished.
    pub generated_at: u64,
    pub elapsed_seconds: f64,
    pub models: ModelsUsed,
    pub summary: Summary,
    /// Sections that could not be computed, each with one line saying why.
    pub missing: Vec<MissingSection>,
    /// Every readable photo's quality verdict, reasons and metrics, in file-name order.
    pub photos: Vec<QualityDetail>,
    /// `None` when missing (see `missing`).
    pub categories: Option<Vec<CategoryGroup>>,
    pub duplicates: Vec<DuplicateGroup>,
    /// The low-quality photos (a subset of `photos`).
    pub low_quality: Vec<QualityDetail>,
    /// Per category: every photo's aesthetic score and the best shots (`highlights`).
    pub highlights: Option<Vec<ScoredCategory>>,
    pub people: Option<People>,
    /// Files that could not be analysed, with the stable reason and a sentence.
    pub unreadable: Vec<InvalidImage>,
    /// Files left out because their name does not say photo (`.txt`, `.xmp`, …).
    pub skipped: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ModelsUsed {
    /// The CLIP model id in cache keys (`pixels-only` without CLIP).
    pub clip: String,
    pub aesthetic: bool,
    /// The face models' id, when loaded.
    pub faces: Option<String>,
    /// One line per model that could not be loaded.
    pub not_loaded: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Photo files found (readable or not).
    pub files: usize,
    pub photos: usize,
    pub unreadable: usize,
    pub skipped: usize,
    pub duplicate_groups: usize,
    pub low_quality: usize,
    pub people: usize,
    pub faces: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingSection {
    /// `categories`, `highlights` or `people`.
    pub section: &'static str,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct People {
    /// Faces found in all photos (clustered or not).
    pub faces_found: usize,
    /// The clusters, largest first, each with every face (`faces`).
    pub clusters: Vec<Person>,
    /// Readable photos whose faces could not be found (a model failed on them).
    pub failed: Vec<InvalidImage>,
}

impl Report {
    pub fn missing_why(&self, section: &str) -> Option<&str> {
        self.missing
            .iter()
            .find(|m| m.section == section)
            .map(|m| m.why.as_str())
    }
}

/// Writes `report.json` and `report.html` into `out` (which exists).
pub fn write(out: &Path, report: &Report, pictures: &pictures::Pictures) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report).context("cannot serialise the report")?;
    write_file(&out.join("report.json"), &json)?;
    write_file(&out.join("report.html"), html::render(report, pictures).as_bytes())
}

/// Writes beside the target and renames: a report being replaced is never half written.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

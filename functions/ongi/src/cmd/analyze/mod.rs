//! `ongi analyze DIR [--out DIR] [--models DIR]`: every analysis on a folder of photos,
//! written as `report.json` and a self-contained `report.html` (see [`report`]).
//!
//! Nothing is re-implemented here: the process is built the way `ongi serve` builds itself
//! ([`Services::from_settings`]), the photos are read through its store, their features and
//! faces through its feature and face services, and the analyses are the library calls the
//! album routes make. The folder becomes the uploads bucket of a local store through a
//! private data folder whose bucket is a symlink to it, so the photos are read where they
//! are (no copy) and the store's containment checks still apply to every file.

mod report;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ongi_shared::album::{Album, CategoryGroup, DuplicateGroup, InvalidImage, QualityDetail, ScoredCategory, persons};
use ongi_shared::config::Settings;
use ongi_shared::domain::{ImageRef, Reason};
use ongi_shared::functions::Functions;
use ongi_shared::pipeline::face_record::StoredFace;
use ongi_shared::pipeline::{Features, PhotoError};
use ongi_shared::services::Services;

use report::html::FACES_SHOWN;
use report::pictures::{self, Pictures};
use report::{MissingSection, ModelsUsed, People, REPORT_VERSION, Report, Summary};
use scan::{scan, unreadable};

/// `--out` when not given: inside the analysed folder (and skipped when it is scanned).
pub const DEFAULT_OUT: &str = "ongi-report";

/// Settings that describe a deployment rather than an analysis: the store, the cache and
/// publishing are this run's own. The cache in particular stays in process: a folder's
/// file names must not leave aliases in a shared Redis, nor read stale ones from it.
const NOT_FOR_ANALYZE: &[&str] = &[
    "ONGI_STORAGE",
    "STORAGE_EMULATOR_HOST",
    "ONGI_DATA_DIR",
    "ONGI_BUCKET",
    "ONGI_RESULTS_BUCKET",
    "REDIS_URL",
    "PUBSUB_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
    "ONGI_PUBLISH",
    "EMBEDDING_URL",
    "ONGI_MODEL_DIR",
];

pub struct AnalyzeOptions {
    pub dir: PathBuf,
    pub out: Option<PathBuf>,
    pub models: PathBuf,
}

pub async fn run(options: AnalyzeOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = std::fs::canonicalize(&options.dir)
        .with_context(|| format!("cannot open the photo folder {}", options.dir.display()))?;
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let out = options.out.unwrap_or_else(|| dir.join(DEFAULT_OUT));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create the report folder {}", out.display()))?;
    let out = std::fs::canonicalize(&out).with_context(|| format!("cannot resolve {}", out.display()))?;
    let found = scan(&dir, &out).with_context(|| format!("cannot read the photo folder {}", dir.display()))?;

    let mut settings = settings(&options.models)?;
    if std::env::var_os("RUST_LOG").is_some() {
        ongi_shared::telemetry::init_logging(settings.log_format);
    }
    let root = tempfile::Builder::new()
        .prefix("ongi-analyze-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    std::os::unix::fs::symlink(&dir, root.path().join(settings.bucket.as_str()))
        .context("cannot link the photo folder into the temporary data folder")?;
    settings.data_dir = root.path().to_path_buf();
    let state = Services::from_settings(settings, Functions::all())
        .await
        .context("cannot start the analyses")?;
    if let Some(line) = state.models.missing_line() {
        eprintln!("ongi analyze: {line}");
    }

    let mut unreadable = found.unreadable;
    let mut refs = Vec::with_capacity(found.photos.len());
    for name in found.photos {
        match ImageRef::parse(&name) {
            Ok(r) => refs.push(r),
            Err(e) => unreadable.push(InvalidImage {
                image: name,
                reason: Reason::InvalidName,
                detail: Some(e.to_string()),
            }),
        }
    }
    let files = refs.len() + unreadable.len();

    let (photos, failed) = read_features(&state, &refs).await;
    unreadable.extend(failed);
    unreadable.sort_by(|a, b| a.image.cmp(&b.image));
    let analysis = analyse(&state, &photos).await;
    let people = if state.faces.available() {
        Some(find_people(&state, &photos).await)
    } else {
        None
    };
    let pictures = draw_pictures(&state, &photos, &analysis, people.as_ref()).await;

    let mut missing = analysis.missing;
    if people.is_none() {
        missing.push(MissingSection {
            section: "people",
            why: why(
                &state,
                &["face"],
                "needs the face detector and the SFace embedder, which are not loaded",
            ),
        });
    }
    let models = &state.models;
    let summary = Summary {
        files,
        photos: photos.len(),
        unreadable: unreadable.len(),
        skipped: found.skipped.len(),
        duplicate_groups: analysis.duplicates.len(),
        low_quality: analysis.low_quality.len(),
        people: people.as_ref().map_or(0, |p| p.clusters.len()),
        faces: people.as_ref().map_or(0, |p| p.faces_found),
    };
    let report = Report {
        version: REPORT_VERSION,
        folder: dir.display().to_string(),
        generated_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        models: ModelsUsed {
            clip: models.clip_model_id.clone(),
            aesthetic: models.aesthetic.is_some(),
            faces: state.faces.available().then(|| models.face_model_id.clone()),
            not_loaded: models.missing.clone(),
        },
        summary,
        missing,
        photos: analysis.details,
        categories: analysis.categories,
        duplicates: analysis.duplicates,
        low_quality: analysis.low_quality,
        highlights: analysis.highlights,
        people,
        unreadable,
        skipped: found.skipped,
    };
    report::write(&out, &report, &pictures)?;
    let s = &report.summary;
    println!(
        "ongi analyze: {} photos ({} unreadable): {} duplicate groups, {} low quality, {} people; {} sections missing",
        s.photos,
        s.unreadable,
        s.duplicate_groups,
        s.low_quality,
        s.people,
        report.missing.len()
    );
    println!("ongi analyze: wrote {}", out.join("report.html").display());
    println!("ongi analyze: wrote {}", out.join("report.json").display());
    Ok(())
}

fn settings(models: &Path) -> anyhow::Result<Settings> {
    let mut settings = Settings::from_lookup(|name| {
        if NOT_FOR_ANALYZE.contains(&name) {
            None
        } else {
            std::env::var(name).ok()
        }
    })?;
    settings.model_dir = models.to_path_buf();
    Ok(settings)
}

/// One line: `what`, then the load failures that mention one of `keys` (all of them if none does).
fn why(state: &Services, keys: &[&str], what: &str) -> String {
    let missing = &state.models.missing;
    let relevant: Vec<&str> = missing
        .iter()
        .filter(|m| {
            let m = m.to_lowercase();
            keys.iter().any(|k| m.contains(k))
        })
        .map(String::as_str)
        .collect();
    let lines = if relevant.is_empty() {
        missing.iter().map(String::as_str).collect()
    } else {
        relevant
    };
    if lines.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {}", lines.join("; "))
    }
}

fn progress(len: usize, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn invalid(image: &ImageRef, e: PhotoError) -> InvalidImage {
    let detail = if e.transient {
        format!("{} (a model or the disk failed; running again may succeed)", e.detail)
    } else {
        e.detail
    };
    unreadable(image.to_string(), e.reason, detail)
}

// ------------------------------------------------------------------------------ features

/// Every photo's features, one photo per call so the bar moves photo by photo; calls
/// overlap (downloads, decodes and CLIP batches run together, as in an album call).
async fn read_features(state: &Services, refs: &[ImageRef]) -> (Vec<(ImageRef, Features)>, Vec<InvalidImage>) {
    let bar = progress(refs.len(), "reading photos");
    let concurrency = std::thread::available_parallelism().map_or(2, usize::from) * 4;
    let results: Vec<(ImageRef, Option<Result<Features, PhotoError>>)> = futures::stream::iter(refs)
        .map(|r| {
            let bar = &bar;
            async move {
                let result = state.features.album(std::slice::from_ref(r)).await.pop();
                bar.inc(1);
                (r.clone(), result)
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut photos = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (r, result) in results {
        match result {
            Some(Ok(f)) => photos.push((r, f)),
            Some(Err(e)) => failed.push(invalid(&r, e)),
            None => failed.push(unreadable(r.to_string(), Reason::Internal, "no result")),
        }
    }
    (photos, failed)
}

// ------------------------------------------------------------------------------ analyses

struct Analysis {
    details: Vec<QualityDetail>,
    low_quality: Vec<QualityDetail>,
    duplicates: Vec<DuplicateGroup>,
    categories: Option<Vec<CategoryGroup>>,
    highlights: Option<Vec<ScoredCategory>>,
    missing: Vec<MissingSection>,
}

/// Quality, duplicates, categories and highlights, by the album functions the routes call;
/// a section that needs a model this process lacks is named in `missing` with why.
async fn analyse(state: &Services, photos: &[(ImageRef, Features)]) -> Analysis {
    let analysis_models = &state.analysis_models;
    let models = analysis_models.models();
    let album = Album::new(analysis_models, photos);
    let verdicts = album.verdicts().await;
    let groups = album.duplicate_groups(&verdicts);
    let details = album.quality_details(&verdicts);
    let low_quality = album
        .quality_details(&verdicts)
        .into_iter()
        .filter(|d| d.low_quality)
        .collect();
    let duplicates = album.duplicate_details(&groups);

    let mut missing = Vec::new();
    let categories: Option<Vec<(String, Vec<usize>)>> = if models.clip_visual.is_none() {
        missing.push(MissingSection {
            section: "categories",
            why: why(state, &["clip"], "needs the CLIP image encoder, which is not loaded"),
        });
        None
    } else {
        match analysis_models.category_tags(&[]).await {
            Ok(tags) => Some(album.categories(&tags)),
            Err(e) => {
                missing.push(MissingSection {
                    section: "categories",
                    why: format!("needs the CLIP text encoder: {e}"),
                });
                None
            }
        }
    };
    let highlights = match (&categories, &models.aesthetic) {
        (Some(categories), Some(_)) => {
            let eligible = album.highlight_eligible(&verdicts, &groups);
            let members: Vec<_> = categories
                .iter()
                .map(|(category, members)| (category.clone(), members.iter().map(|&i| (album.name(i), i)).collect()))
                .collect();
            Some(album.scores(&members, Some(&eligible)))
        }
        (None, _) => {
            missing.push(MissingSection {
                section: "highlights",
                why: "needs the categories (CLIP), which are missing".into(),
            });
            None
        }
        (Some(_), None) => {
            missing.push(MissingSection {
                section: "highlights",
                why: why(state, &["aesthetic"], "needs the aesthetic head, which is not loaded"),
            });
            None
        }
    };
    let categories = categories.map(|c| album.category_groups(&c));
    Analysis {
        details,
        low_quality,
        duplicates,
        categories,
        highlights,
        missing,
    }
}

// ------------------------------------------------------------------------------ people

/// Faces photo by photo (detection takes both cores per photo, so two at a time), then the
/// people, as the people route clusters them.
async fn find_people(state: &Services, photos: &[(ImageRef, Features)]) -> People {
    let bar = progress(photos.len(), "finding faces");
    let results: Vec<Option<Result<Vec<StoredFace>, PhotoError>>> = futures::stream::iter(photos)
        .map(|(r, _)| {
            let bar = &bar;
            async move {
                let result = state.faces.album(std::slice::from_ref(r)).await.pop();
                bar.inc(1);
                result
            }
        })
        .buffered(2)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut faces: Vec<(usize, StoredFace)> = Vec::new();
    let mut failed = Vec::new();
    for (p, result) in results.into_iter().enumerate() {
        match result {
            Some(Ok(found)) => faces.extend(found.into_iter().map(|f| (p, f))),
            Some(Err(e)) => failed.push(invalid(&photos[p].0, e)),
            None => failed.push(unreadable(photos[p].0.to_string(), Reason::Internal, "no result")),
        }
    }
    let clusters = persons(&faces, |p| photos[p].0.to_string(), true);
    People {
        faces_found: faces.len(),
        clusters,
        failed,
    }
}

// ------------------------------------------------------------------------------ pictures

/// Thumbnails of the photos the page shows and crops of the faces it shows, each photo
/// read and decoded once more (the features keep no pixels).
async fn draw_pictures(
    state: &Services,
    photos: &[(ImageRef, Features)],
    analysis: &Analysis,
    people: Option<&People>,
) -> Pictures {
    let mut thumbnails: BTreeSet<&str> = BTreeSet::new();
    for g in analysis.categories.iter().flatten() {
        thumbnails.extend(g.images.iter().map(String::as_str));
    }
    for g in &analysis.duplicates {
        thumbnails.insert(&g.keeper);
        thumbnails.extend(g.duplicates.iter().map(|m| m.image.as_str()));
    }
    thumbnails.extend(analysis.low_quality.iter().map(|d| d.image.as_str()));
    for c in analysis.highlights.iter().flatten() {
        thumbnails.extend(c.highlights.iter().flatten().map(String::as_str));
    }
    // The faces the page shows: each person's representative and the next ones, as html.rs
    // picks them.
    let mut face_boxes: BTreeMap<&str, Vec<[i32; 4]>> = BTreeMap::new();
    for p in people.iter().flat_map(|p| &p.clusters) {
        let rep = &p.representative_face;
        face_boxes.entry(&rep.image).or_default().push(rep.bbox);
        let others = p
            .faces
            .iter()
            .flatten()
            .filter(|f| !(f.image == rep.image && f.bbox == rep.bbox))
            .take(FACES_SHOWN - 1);
        for f in others {
            face_boxes.entry(&f.image).or_default().push(f.bbox);
        }
    }
    let wanted: Vec<(&ImageRef, bool, Vec<[i32; 4]>)> = photos
        .iter()
        .filter_map(|(r, _)| {
            let thumb = thumbnails.contains(r.as_str());
            let boxes = face_boxes.get(r.as_str()).cloned().unwrap_or_default();
            (thumb || !boxes.is_empty()).then_some((r, thumb, boxes))
        })
        .collect();

    let bar = progress(wanted.len(), "drawing pictures");
    let bucket = state.settings.bucket.clone();
    let limits = state.settings.limits;
    let concurrency = std::thread::available_parallelism().map_or(2, usize::from);
    let drawn: Vec<(String, Option<pictures::PhotoPictures>)> = futures::stream::iter(wanted)
        .map(|(r, thumb, boxes)| {
            let (bar, bucket) = (&bar, &bucket);
            async move {
                let drawn = match state.store.get(bucket, r.object(), limits.max_bytes).await {
                    Ok(stored) => {
                        tokio::task::spawn_blocking(move || pictures::draw(&stored.bytes, &limits, thumb, &boxes))
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                    Err(_) => None,
                };
                bar.inc(1);
                // A photo that cannot be drawn now (changed since it was read) is shown as
                // a placeholder: the analyses stand.
                (r.to_string(), drawn)
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut pictures = Pictures::default();
    for (image, drawn) in drawn {
        let Some(drawn) = drawn else { continue };
        if let Some(t) = drawn.thumbnail {
            pictures.thumbnails.insert(image.clone(), t);
        }
        for (b, uri) in drawn.faces {
            pictures.faces.insert((image.clone(), b), uri);
        }
    }
    pictures
}

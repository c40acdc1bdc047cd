//! `ongi bench embed --photos DIR --models DIR`: CLIP image-embedding throughput, measured
//! the way the service runs (read, decode once at reduced scale, pixel features, CLIP
//! preprocessing, batched inference), one JSON line per configuration. A benchmark, not a
//! test: run it beside `peer_baseline.py` on the same machine and compare ratios.

pub mod album;
mod bombs;
mod cgroup;
mod floods;
pub mod hostile;
pub mod load;
pub mod serve;
mod steady;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use ongi_shared::config::IngestLimits;
use ongi_shared::model::clip::preprocess::PIXELS_PER_IMAGE;
use ongi_shared::model::clip::{ClipVisual, VISUAL_FILE};
use ongi_shared::model::runtime::{self, SessionConfig};
use ongi_shared::pipeline::batcher::Batcher;
use ongi_shared::pipeline::pixels::pixel_features;
use serde_json::json;

pub struct BenchOptions {
    pub photos: PathBuf,
    pub models: PathBuf,
    pub rounds: usize,
    pub batch_sizes: Vec<usize>,
    pub threads: usize,
    pub limit: Option<usize>,
}

/// The files directly in `dir` whose extension `keep` accepts, sorted by path.
pub(crate) fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the photo folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(&keep))
        .collect();
    files.sort();
    Ok(files)
}

pub(crate) fn list_photos(dir: &Path, limit: Option<usize>) -> anyhow::Result<Vec<PathBuf>> {
    // Only the formats the service decodes: the benchmark times decoding.
    let mut files = files_in(dir, |e| {
        matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png" | "webp")
    })?;
    if let Some(n) = limit {
        files.truncate(n);
    }
    if files.is_empty() {
        bail!("no JPEG, PNG or WebP photos in {}", dir.display());
    }
    Ok(files)
}

/// Peak resident set size of this process, from /proc (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Read + decode + features + preprocess + batched inference over every photo.
async fn end_to_end(model: &Arc<ClipVisual>, photos: &[PathBuf], max_batch: usize) -> anyhow::Result<Duration> {
    let batcher = Batcher::start(model.clone(), max_batch, Duration::from_millis(5));
    let limits = IngestLimits::default();
    // Enough photos in flight to fill a batch while the next ones decode.
    let in_flight = (max_batch * 2).max(4);
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(photos.iter().cloned())
        .map(|path| {
            let batcher = batcher.clone();
            async move {
                let bytes = tokio::fs::read(&path).await?;
                let pixels = tokio::task::spawn_blocking(move || pixel_features(&bytes, &limits, true)).await??;
                let input = pixels.clip_input.context("no CLIP input")?;
                batcher.embed(input).await?;
                Ok(())
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    for r in results {
        r?;
    }
    Ok(elapsed)
}

/// Decode + features + preprocess on one thread (no inference).
fn decode_preprocess(photos: &[PathBuf]) -> anyhow::Result<(Duration, Vec<Vec<f32>>)> {
    let limits = IngestLimits::default();
    let mut inputs = Vec::with_capacity(photos.len());
    let started = Instant::now();
    for p in photos {
        let bytes = std::fs::read(p)?;
        inputs.push(
            pixel_features(&bytes, &limits, true)?
                .clip_input
                .context("no CLIP input")?,
        );
    }
    Ok((started.elapsed(), inputs))
}

/// Inference alone on preprocessed tensors, in batches of `batch`.
fn inference_only(model: &ClipVisual, inputs: &[Vec<f32>], batch: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for chunk in inputs.chunks(batch) {
        let mut pixels = Vec::with_capacity(chunk.len() * PIXELS_PER_IMAGE);
        chunk.iter().for_each(|c| pixels.extend_from_slice(c));
        model.embed(pixels, chunk.len())?;
    }
    Ok(started.elapsed())
}

pub async fn embed(opts: BenchOptions) -> anyhow::Result<()> {
    let library = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    let env = runtime::environment(library.as_deref(), "the benchmark")?;
    let photos = list_photos(&opts.photos, opts.limit)?;
    let load_started = Instant::now();
    let model = Arc::new(ClipVisual::load(
        env,
        &opts.models.join(VISUAL_FILE),
        SessionConfig::threads(opts.threads),
    )?);
    let load_s = load_started.elapsed().as_secs_f64();
    // Warm the page cache and the session, as the peer script does.
    for p in &photos {
        std::fs::read(p)?;
    }
    let (decode_time, inputs) = decode_preprocess(&photos)?;
    inference_only(&model, &inputs[..inputs.len().min(2)], 1)?;
    let n = photos.len() as f64;
    for &batch in &opts.batch_sizes {
        let mut e2e = Vec::new();
        let mut infer = Vec::new();
        for _ in 0..opts.rounds {
            e2e.push(n / end_to_end(&model, &photos, batch).await?.as_secs_f64());
            infer.push(n / inference_only(&model, &inputs, batch)?.as_secs_f64());
        }
        let line = json!({
            "config": format!("ongi-batch{batch}"),
            "images": photos.len(),
            "batch": batch,
            "threads": opts.threads,
            "rounds": opts.rounds,
            "images_per_s": median(e2e.clone()),
            "images_per_s_rounds": e2e,
            "infer_images_per_s": median(infer.clone()),
            "infer_images_per_s_rounds": infer,
            "decode_preprocess_images_per_s_one_thread": n / decode_time.as_secs_f64(),
            "model_load_s": load_s,
            "peak_rss_mb": peak_rss_mb(),
        });
        println!("{line}");
    }
    Ok(())
}

/// `ongi bench duplicates`: grouping time for `n` photos' features (synthetic: random unit
/// embeddings and pHashes, with one planted near duplicate per ten photos).
pub fn duplicates(n: usize, rounds: usize) -> anyhow::Result<()> {
    use ongi_shared::analysis::duplicate::{DupPhoto, group};
    use ongi_shared::domain::ContentHash;
    // A small deterministic generator (SplitMix64): the benchmark needs no statistics.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut photos: Vec<DupPhoto> = Vec::with_capacity(n);
    for i in 0..n {
        let (phash, mut embedding) = if i % 10 == 9 {
            let base: &DupPhoto = &photos[i - 1];
            let e = base.embedding.clone().unwrap_or_default();
            (
                base.phash ^ (1 << (next() % 64)),
                e.iter().map(|x| x + 0.01).collect::<Vec<f32>>(),
            )
        } else {
            (
                next(),
                (0..512).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect(),
            )
        };
        ongi_shared::model::clip::l2_normalize(&mut embedding);
        photos.push(DupPhoto {
            hash: ContentHash::of(&(i as u64).to_le_bytes()),
            phash,
            embedding: Some(embedding),
            rank: (next() % 1000) as f64,
            captured_at: None,
        });
    }
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        found = group(&photos, 0.95).len();
        times.push(started.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        json!({"config": "group-duplicates", "photos": n, "groups": found, "seconds": median(times.clone()),
               "seconds_rounds": times, "threads": std::thread::available_parallelism().map_or(1, usize::from)})
    );
    Ok(())
}

/// `ongi bench faces`: detection, alignment and embedding on a folder of photos, with the
/// face models of `--models` (the detector chosen by `detector`), one photo at a time.
pub fn faces(
    photos_dir: &Path,
    models: &Path,
    detector: ongi_shared::config::FaceDetector,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    use ongi_shared::image::decode;
    use ongi_shared::model::Models;
    use ongi_shared::model::face::{align_face, detect_in_original};
    let library = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    let mut loaded = Models::none("faces only");
    loaded.missing.clear();
    loaded.load_faces(models, library.as_deref(), detector);
    let (Some(det), Some(emb)) = (loaded.face_detector.clone(), loaded.face_embedder.clone()) else {
        bail!("face models missing: {}", loaded.missing.join("; "));
    };
    let photos = list_photos(photos_dir, limit)?;
    let limits = IngestLimits::default();
    let (mut t_decode, mut t_detect, mut t_align, mut t_embed) = (0.0, 0.0, 0.0, 0.0);
    let mut faces = 0usize;
    let started = Instant::now();
    for p in &photos {
        let bytes = std::fs::read(p)?;
        let t = Instant::now();
        let decoded = decode(&bytes, &limits, det.options().decode_options())?;
        t_decode += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let found = detect_in_original(det.as_ref(), &decoded)?;
        t_detect += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let to_px = decoded.pixels.width() as f32 / decoded.source_width.max(1) as f32;
        let aligned: Vec<_> = found
            .iter()
            .filter_map(|f| align_face(&decoded.pixels, &f.landmarks.map(|[x, y]| [x * to_px, y * to_px])).ok())
            .collect();
        t_align += t.elapsed().as_secs_f64();
        let t = Instant::now();
        emb.embed(&aligned)?;
        t_embed += t.elapsed().as_secs_f64();
        faces += aligned.len();
    }
    let total = started.elapsed().as_secs_f64();
    let n = photos.len() as f64;
    println!(
        "{}",
        json!({"config": format!("faces-{}", loaded.face_model_id), "photos": photos.len(), "faces": faces,
               "faces_per_s": faces as f64 / total, "photos_per_s": n / total,
               "ms_per_photo": {"decode": 1e3 * t_decode / n, "detect": 1e3 * t_detect / n,
                                "align": 1e3 * t_align / n, "embed": 1e3 * t_embed / n},
               "peak_rss_mb": peak_rss_mb()})
    );
    Ok(())
}

//! `ongi models fetch | verify`: installs the production weights into the model folder, and
//! checks a folder against its manifest. The work is done by
//! [`ongi_shared::model::manifest`]; this module prints it: one line per model on stdout, a
//! progress bar on a terminal, and one line on stderr (from `main`) when something fails.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ongi_shared::config::Settings;
use ongi_shared::model::manifest::{self, FetchEvent, FetchOptions, Manifest, Mismatched, ModelStatus};
use ongi_shared::model::ort_library::{self, OrtRelease};

/// `ongi models fetch`: installs every file of the production manifest (or of
/// `manifest_file`) into `dir`, and writes the manifest there. The user asked for it, so a
/// file that does not match its pin is replaced, but only by a verified download, and kept
/// aside as `<file>.replaced`.
/// With the production manifest, then the ONNX Runtime library the production models run
/// on, when none is found ([`fetch_runtime`]); a manifest of one's own is only its files.
pub async fn fetch(settings: &Settings, manifest_file: Option<&Path>) -> anyhow::Result<()> {
    let manifest = match manifest_file {
        Some(path) => Manifest::from_file(path).map_err(|e| anyhow!("{e}"))?,
        None => Manifest::production(),
    };
    let models = run_fetch(&manifest, &settings.model_dir, Mismatched::ReplaceKeepingAside).await;
    if manifest_file.is_some() {
        return models;
    }
    let runtime = fetch_runtime(settings).await;
    models.and(runtime)
}

/// Installs the pinned ONNX Runtime release into the model folder when no library is found
/// on this machine (nor named by `ORT_DYLIB_PATH`); says in one line where the library is.
pub async fn fetch_runtime(settings: &Settings) -> anyhow::Result<()> {
    let search = ort_library::Search::from_settings(settings);
    let located = tokio::task::spawn_blocking(move || ort_library::locate(&search))
        .await
        .map_err(|e| anyhow!("the ONNX Runtime library search failed: {e}"))?
        .map_err(|e| anyhow!("{e}"))?;
    if let Some(found) = located.candidates.first() {
        println!("present    ONNX Runtime library {found}");
        return Ok(());
    }
    let Some(release) = OrtRelease::pinned() else {
        bail!(
            "{}",
            ort_library::OrtFetchError::NoPinnedRelease(format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH))
        );
    };
    let mut progress = Progress { bar: None };
    let installed = ort_library::fetch_library(
        &release,
        &settings.ort_download_url,
        &settings.model_dir,
        &FetchOptions::default(),
        |event| progress.show(event),
    )
    .await;
    progress.clear();
    let path = installed.map_err(|e| {
        anyhow!(
            "the ONNX Runtime library was not installed: {e}; `pip install onnxruntime==1.32.0`, or set ORT_DYLIB_PATH \
             to libonnxruntime.so.1.32.0"
        )
    })?;
    println!("installed  ONNX Runtime {} at {}", release.version, path.display());
    Ok(())
}

/// `ongi serve`'s first-run download: installs what is missing from the folder's own
/// manifest (or the production one), and never touches a file that is there, even one that
/// does not match its pin (it may be the user's own model): one line says so.
pub async fn fetch_missing(dir: &Path) -> anyhow::Result<()> {
    let manifest = Manifest::load(dir).map_err(|e| anyhow!("{e}"))?;
    run_fetch(&manifest, dir, Mismatched::Keep).await
}

async fn run_fetch(manifest: &Manifest, dir: &Path, mismatched: Mismatched) -> anyhow::Result<()> {
    println!(
        "ongi models fetch: {} files into {} (manifest: {})",
        manifest.models().len(),
        dir.display(),
        manifest.origin()
    );
    let mut progress = Progress { bar: None };
    let options = FetchOptions {
        mismatched,
        ..FetchOptions::default()
    };
    let result = manifest::fetch_with(manifest, dir, &options, |event| progress.show(event)).await;
    progress.clear();
    let report = result.map_err(|e| anyhow!("{e}"))?;
    let kept = match report.kept.len() {
        0 => String::new(),
        n => format!(", {n} not matching their pin left as they are"),
    };
    println!(
        "done: {} installed, {} already present, {} optional files skipped{kept}; run 'ongi models verify' to check the folder",
        report.installed.len(),
        report.present.len(),
        report.skipped.len()
    );
    Ok(())
}

/// `ongi models verify`: checks `dir` against its `manifest.toml` (or the production manifest)
/// and fails when a required file is missing or any file is wrong.
pub fn verify(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!(
            "no model folder at {}: run 'ongi models fetch --models {}', or set ONGI_MODEL_DIR / --models",
            dir.display(),
            dir.display()
        );
    }
    let report = manifest::verify(dir).map_err(|e| anyhow!("{e}"))?;
    println!("model folder {} (manifest: {})", dir.display(), report.manifest);
    for check in &report.checks {
        let size = check.size.map_or_else(|| "-".to_owned(), |s| format!("{s} bytes"));
        let optional = if check.required { "" } else { " (optional)" };
        let detail = match &check.status {
            ModelStatus::Ok | ModelStatus::Missing => String::new(),
            other => format!("  — {other}"),
        };
        println!(
            "{:<10} {:<38} {:>16}  {}{optional}{detail}",
            check.status.label(),
            check.file,
            size,
            check.licence
        );
    }
    let failures: Vec<&str> = report.failures().map(|c| c.file.as_str()).collect();
    if !failures.is_empty() {
        bail!(
            "{} model file(s) missing or wrong in {}: {}; run 'ongi models fetch' or copy them in by hand",
            failures.len(),
            dir.display(),
            failures.join(", ")
        );
    }
    let unpinned = report
        .checks
        .iter()
        .filter(|c| matches!(c.status, ModelStatus::Unpinned { .. }))
        .count();
    if unpinned > 0 {
        println!("all required models are present; {unpinned} file(s) cannot be checked until their hash is pinned");
    } else {
        println!("all required models are present and valid");
    }
    Ok(())
}

/// Prints one line per model and draws a progress bar (only on a terminal: indicatif hides
/// it when stderr is redirected).
struct Progress {
    bar: Option<ProgressBar>,
}

fn bar_for(total: Option<u64>) -> ProgressBar {
    match total {
        Some(total) => {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
    }
}

impl Progress {
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Draws or clears the bar, or prints the line, that `event` calls for.
    fn show(&mut self, event: FetchEvent<'_>) {
        match event {
            FetchEvent::DownloadStarted { model, total } => {
                self.clear();
                let bar = bar_for(total);
                let host = model.source_host().unwrap_or_default();
                bar.set_message(format!("{} ({host})", model.file));
                self.bar = Some(bar);
            }
            FetchEvent::DownloadProgress { received, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(received);
                }
            }
            FetchEvent::DownloadFinished { .. } => self.clear(),
            FetchEvent::Skipped { model, why } => println!("skipped    {}: {why}", model.file),
            FetchEvent::Kept { model, why } => println!("kept       {}: {why}", model.file),
            FetchEvent::MovedAside { model, why, aside } => {
                let name = aside
                    .file_name()
                    .map_or_else(|| aside.display().to_string(), |n| n.to_string_lossy().into_owned());
                println!(
                    "replaced   {}: it was {why}; the verified download took its place and the old file is kept as {name}",
                    model.file
                );
            }
            FetchEvent::Installed { model } => {
                let size = model.bytes.map(|b| format!(", {b} bytes")).unwrap_or_default();
                println!("installed  {} ({}{size}, sha256 verified)", model.file, model.licence);
            }
            FetchEvent::Failed { model, why } => println!("failed     {}: {why}", model.file),
        }
    }
}

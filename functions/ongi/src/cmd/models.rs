//! `ongi models fetch | verify`: installs the production weights into the model folder, and
//! checks a folder against its manifest, the functions' files unless `--for` says otherwise. The work is done by
//! [`ongi_shared::model::manifest`]; this module prints it: one line per model on stdout, a
//! progress bar on a terminal, and one line on stderr (from `main`) when something fails.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ongi_shared::config::Settings;
use ongi_shared::model::manifest::{self, FetchEvent, FetchOptions, Manifest, Mismatched, ModelStatus, UsedBy};
use ongi_shared::model::ort_library::{self, OrtRelease};

/// Whose files `ongi models fetch | verify` work on (`--for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum For {
    /// The functions' files (and `ongi serve`'s): CLIP, the aesthetic head, the face models.
    Functions,
    /// The GPU worker's files: Stable Diffusion 1.5, in sd15/.
    GpuJob,
    /// Every file of the manifest.
    All,
}

impl For {
    /// The files of `manifest` this selection takes; an error when there are none, since a
    /// fetch or check of nothing would pass without saying so.
    fn select(self, manifest: &Manifest) -> anyhow::Result<Manifest> {
        let (selected, who) = match self {
            Self::Functions => (manifest.only_used_by(UsedBy::Functions), UsedBy::Functions),
            Self::GpuJob => (manifest.only_used_by(UsedBy::GpuJob), UsedBy::GpuJob),
            Self::All => return Ok(manifest.clone()),
        };
        if selected.models().is_empty() {
            bail!(
                "the model manifest {} lists no file used by {who} (used_by = \"{who}\"); try another --for",
                manifest.origin()
            );
        }
        Ok(selected)
    }

    /// What the first line of a command says it works on: " (the functions')", " (the GPU
    /// worker's)", or nothing for every file.
    fn phrase(self) -> &'static str {
        match self {
            Self::Functions => " (the functions')",
            Self::GpuJob => " (the GPU worker's)",
            Self::All => "",
        }
    }
}

/// `ongi models fetch`: installs the files of the production manifest (or of
/// `manifest_file`) that `which` selects into `dir`, and writes the whole manifest there. The
/// user asked for it, so a file that does not match its pin is replaced, but only by a
/// verified download, and kept aside as `<file>.replaced`.
/// With the production manifest and the functions' files, then the ONNX Runtime library they
/// run on, when none is found ([`fetch_runtime`]); a manifest of one's own is only its files.
pub async fn fetch(settings: &Settings, manifest_file: Option<&Path>, which: For) -> anyhow::Result<()> {
    let manifest = match manifest_file {
        Some(path) => Manifest::from_file(path).map_err(|e| anyhow!("{e}"))?,
        None => Manifest::production(),
    };
    let selected = which.select(&manifest)?;
    let models = run_fetch(&selected, &settings.model_dir, Mismatched::ReplaceKeepingAside, which).await;
    if manifest_file.is_some() || which == For::GpuJob {
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

/// `ongi serve`'s first-run download: installs the functions' files that are missing from the
/// folder's own manifest (or the production one), never the GPU worker's, and never touches a
/// file that is there, even one that does not match its pin (it may be the user's own model):
/// one line says so.
pub async fn fetch_missing(dir: &Path) -> anyhow::Result<()> {
    let manifest = Manifest::load(dir).map_err(|e| anyhow!("{e}"))?;
    let functions = manifest.only_used_by(UsedBy::Functions);
    if functions.models().is_empty() {
        return Ok(());
    }
    run_fetch(&functions, dir, Mismatched::Keep, For::Functions).await
}

async fn run_fetch(manifest: &Manifest, dir: &Path, mismatched: Mismatched, which: For) -> anyhow::Result<()> {
    println!(
        "ongi models fetch: {} files{} into {} (manifest: {})",
        manifest.models().len(),
        which.phrase(),
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

/// `ongi models verify`: checks the files `which` selects in `dir` against its `manifest.toml`
/// (or the production manifest), and fails when a required one is missing or any is wrong.
pub fn verify(dir: &Path, which: For) -> anyhow::Result<()> {
    let fetch_command = match which {
        For::Functions => "ongi models fetch",
        For::GpuJob => "ongi models fetch --for gpu-job",
        For::All => "ongi models fetch --for all",
    };
    if !dir.is_dir() {
        bail!(
            "no model folder at {}: run '{fetch_command} --models {}', or set ONGI_MODEL_DIR / --models",
            dir.display(),
            dir.display()
        );
    }
    let manifest = Manifest::load(dir).map_err(|e| anyhow!("{e}"))?;
    let report = which.select(&manifest)?.verify(dir);
    println!(
        "model folder {}{} (manifest: {})",
        dir.display(),
        which.phrase(),
        report.manifest
    );
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
            "{} model file(s) missing or wrong in {}: {}; run '{fetch_command}' or copy them in by hand",
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
                let converted = match (&model.convert, model.source_name()) {
                    (Some(_), Some(name)) => format!(", converted from {name}"),
                    _ => String::new(),
                };
                println!(
                    "installed  {} ({}{size}{converted}, sha256 verified)",
                    model.file, model.licence
                );
            }
            FetchEvent::Failed { model, why } => println!("failed     {}: {why}", model.file),
        }
    }
}

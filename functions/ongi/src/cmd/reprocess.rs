//! `ongi reprocess`: batch reprocessing from the command line, with a progress bar.
//!
//! The same walk as `POST /batch/reprocess` ([`Reprocessor`]), on the same settings as
//! `ongi serve` (photos in `./data/<bucket>` by default, GCS or fake-gcs-server with
//! `STORAGE_EMULATOR_HOST`; the cursor and the results in Redis with `REDIS_URL`). It chains
//! calls of one time budget each until the walk is complete, so an interrupted run resumes
//! where it stopped (with Redis; the in-process cache dies with the process). It prints the
//! summed report as JSON on stdout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ongi_shared::config::{Settings, StorageBackend};
use ongi_shared::domain::BucketName;
use ongi_shared::functions::Functions;
use ongi_shared::reprocess::{
    MAX_BUDGET, Outcome, ProgressEvent, RawRequest, ReprocessError, ReprocessReport, ReprocessRequest,
};
use ongi_shared::services::Services;

/// Process the photos of a bucket (or a local folder) whose results are not current for the
/// models here, resuming from the cursor of an interrupted run.
#[derive(clap::Args)]
pub struct ReprocessArgs {
    /// Only objects whose names start with this (default: the whole bucket).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// The bucket (default ONGI_BUCKET, `uploads`).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Reprocess the local folder DIR/<bucket>/ (overrides ONGI_DATA_DIR and ONGI_STORAGE).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Only objects updated at or after this RFC 3339 time, e.g. 2026-11-25T00:00:00Z.
    #[arg(long)]
    pub since: Option<String>,
    /// Steps, comma-separated: embedding, category, quality, score (default: every one that can run).
    #[arg(long, value_delimiter = ',')]
    pub steps: Option<Vec<String>>,
    /// Count what would be processed; process nothing, move no cursor.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds per call, after which the cursor is saved and the next call resumes
    /// (default ONGI_REPROCESS_BUDGET_SECS).
    #[arg(long)]
    pub budget_secs: Option<f64>,
    /// Objects per listed page (1-1000).
    #[arg(long)]
    pub page_size: Option<u32>,
}

pub async fn run(args: ReprocessArgs) -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    if let Some(dir) = args.data_dir {
        // A folder named on the command line is the store, whatever the settings say.
        settings.data_dir = dir;
        settings.storage = StorageBackend::Local;
    }
    if let Some(bucket) = &args.bucket {
        settings.bucket = BucketName::parse(bucket).map_err(|e| anyhow::anyhow!("--bucket {bucket:?}: {e}"))?;
    }
    let store_line = match settings.storage {
        StorageBackend::Local => format!("{}", settings.data_dir.join(settings.bucket.as_str()).display()),
        StorageBackend::Gcs => format!("gs://{}", settings.bucket),
    };
    let default_budget = settings.reprocess.budget;
    let state = Services::from_settings(settings, Functions::all())
        .await
        .context("cannot start ongi reprocess")?;
    if !state.models.missing.is_empty() {
        eprintln!(
            "ongi reprocess: running without CLIP ({}): embedding (pixel features) and quality only",
            state.models.missing.join("; ")
        );
    }
    let mut request = RawRequest {
        bucket: state.settings.bucket.as_str(),
        prefix: &args.prefix,
        since: args.since.as_deref(),
        steps: args.steps.as_deref(),
        dry_run: args.dry_run,
        budget_secs: args.budget_secs,
        page_size: args.page_size,
        max_pages: None,
    }
    .validate(&state.settings.bucket, &state.functions, &state.models, default_budget)
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if request.dry_run {
        // A dry run moves no cursor, so it cannot be chained: one call, as long as allowed.
        request.budget = MAX_BUDGET;
    }
    let steps: Vec<&str> = request.steps.iter().map(|s| s.name()).collect();
    eprintln!(
        "ongi reprocess: {store_line} prefix {:?}, steps {}{}",
        request.prefix,
        steps.join(", "),
        if request.dry_run { " (dry run)" } else { "" }
    );

    let bar = progress_bar();
    let progress = {
        let bar = bar.clone();
        Arc::new(move |event: ProgressEvent| match event {
            ProgressEvent::Listed(n) => bar.inc_length(n as u64),
            ProgressEvent::Done(outcome) => {
                bar.inc(1);
                if outcome == Outcome::Failed {
                    bar.set_message("(some photos failed: see the report)");
                }
            }
        })
    };
    let started = Instant::now();
    let outcome = walk(&state, &request, progress).await;
    bar.finish_and_clear();
    let (report, calls) = match outcome {
        Ok(done) => done,
        Err((report, calls, e)) => {
            if let Some(report) = report {
                print_report(&report, calls, started.elapsed())?;
            }
            return Err(e);
        }
    };
    print_report(&report, calls, started.elapsed())?;
    eprintln!(
        "ongi reprocess: {} in {:.1} s{}",
        report.summary(),
        started.elapsed().as_secs_f64(),
        if report.complete { "" } else { " (not complete)" }
    );
    Ok(())
}

type Failed = (Option<ReprocessReport>, u32, anyhow::Error);

/// Calls after calls until the walk is complete (each resumes from the last one's cursor).
async fn walk(
    state: &Services,
    request: &ReprocessRequest,
    progress: ongi_shared::reprocess::Progress,
) -> Result<(ReprocessReport, u32), Failed> {
    let reprocessor = state.reprocessor();
    let mut total: Option<ReprocessReport> = None;
    let mut calls = 0;
    loop {
        calls += 1;
        match reprocessor.run(request, Some(progress.clone())).await {
            Ok(report) => {
                let complete = report.complete || request.dry_run;
                match &mut total {
                    Some(t) => t.absorb(report),
                    None => total = Some(report),
                }
                if complete {
                    let total = total.unwrap_or_default();
                    return Ok((total, calls));
                }
            }
            Err(ReprocessError::Stopped { cause, report }) => {
                match &mut total {
                    Some(t) => t.absorb(*report),
                    None => total = Some(*report),
                }
                let e = anyhow::anyhow!("stopped: {cause}; run it again to resume from the cursor");
                return Err((total, calls, e));
            }
            Err(e) => return Err((total, calls, e.into())),
        }
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} listed {per_sec} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_report(report: &ReprocessReport, calls: u32, elapsed: Duration) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(report)?;
    if let Some(object) = value.as_object_mut() {
        let secs = elapsed.as_secs_f64().max(1e-9);
        object.insert("calls".into(), calls.into());
        object.insert("elapsed_ms".into(), (elapsed.as_millis() as u64).into());
        object.insert("scanned_per_s".into(), (report.scanned as f64 / secs).into());
        object.insert("processed_per_s".into(), (report.processed as f64 / secs).into());
    }
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

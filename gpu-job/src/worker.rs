//! The worker loop: claim a job, run one attempt, record how it ended. One job at a time:
//! a GPU holds one Stable Diffusion pipeline, and a second job would only queue on it.
//!
//! An attempt: heartbeats start (they keep the entry from being reclaimed; if one finds
//! the entry taken over, the attempt is cancelled) → the photo is read and decoded → the
//! model runs on a blocking thread → the PNG is written to `results/style/<job id>.png` (a
//! retry overwrites it, never adds a second) → the job is marked done only if this worker
//! still owns it → `ongi.style.v1` is published. On a stop request the current job gets
//! `shutdown_grace` to finish, then it is cancelled between two steps and released.
//!
//! [`Worker::step`] is one claim and one attempt, so tests drive the queue deterministically
//! (zero2prod's `try_execute_task`); [`Worker::run`] loops over it until stopped, beating the
//! worker's [`Liveness`] at every turn (a running job beats it at every denoising step), and
//! removes the group's consumers left by workers that are gone (its own when it stops).

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ongi_shared::config::IngestLimits;
use ongi_shared::domain::BucketName;
use ongi_shared::events::publish::{Publisher, publish_json};
use ongi_shared::image::{DecodeOptions, decode};
use ongi_shared::queue::{ClaimOutcome, Claimed, FailOutcome, QueueError, WorkerQueue};
use ongi_shared::storage::ObjectStore;
use serde::Serialize;
use tokio::sync::watch;

use crate::liveness::Liveness;
use crate::render::{RenderError, Renderer};

/// The long side the diffusion input is resized to (`diffusion::target_size`).
const DIFFUSION_LONG_SIDE: u32 = 512;

/// The schema of the messages published when a job ends.
pub const STYLE_SCHEMA: &str = "ongi.style.v1";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub results_bucket: BucketName,
    /// A claimed job idle this long is presumed abandoned and taken over.
    pub reclaim_after: Duration,
    /// How often a running job's entry is touched; well under `reclaim_after`.
    pub heartbeat_every: Duration,
    /// On a stop request, how long the current job may still run before it is released.
    pub shutdown_grace: Duration,
    pub limits: IngestLimits,
    /// `/healthz` fails once the loop has made no progress for this long.
    pub stall_after: Duration,
}

impl WorkerConfig {
    /// Heartbeats four times per reclaim timeout, so one slow Redis round trip is not fatal.
    pub fn heartbeat_for(reclaim_after: Duration) -> Duration {
        (reclaim_after / 4).max(Duration::from_millis(200))
    }
}

/// How one [`Worker::step`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No job within the block time.
    Idle,
    Done {
        job_id: String,
        result_object: String,
    },
    /// The attempt failed; the job is queued again.
    Retrying {
        job_id: String,
        error: String,
    },
    /// Attempts spent: on the dead-letter stream, status `failed`.
    DeadLettered {
        job_id: String,
        error: String,
    },
    /// Stopped before finishing; the job is queued again, the attempt not counted.
    Released {
        job_id: String,
    },
    /// Another worker took the job over (this one stalled past the reclaim timeout).
    Lost {
        job_id: String,
    },
}

/// The `ongi-results` message for a finished job.
#[derive(Debug, Serialize)]
pub struct StyleMessage<'a> {
    pub schema: &'static str,
    pub job_id: &'a str,
    /// `done` or `failed`.
    pub status: &'static str,
    pub bucket: &'a str,
    pub object: &'a str,
    pub style: &'a str,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_bucket: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_object: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

pub struct Worker {
    queue: WorkerQueue,
    store: Arc<dyn ObjectStore>,
    publisher: Arc<dyn Publisher>,
    renderer: Arc<dyn Renderer>,
    config: WorkerConfig,
    liveness: Arc<Liveness>,
}

/// Why an attempt did not produce a result.
enum AttemptError {
    Cancelled,
    Failed(String),
}

impl Worker {
    pub fn new(
        queue: WorkerQueue,
        store: Arc<dyn ObjectStore>,
        publisher: Arc<dyn Publisher>,
        renderer: Arc<dyn Renderer>,
        config: WorkerConfig,
    ) -> Self {
        let liveness = Arc::new(Liveness::new(config.stall_after));
        Self {
            queue,
            store,
            publisher,
            renderer,
            config,
            liveness,
        }
    }

    /// Whether the loop still moves (what `/healthz` reports).
    pub fn liveness(&self) -> Arc<Liveness> {
        self.liveness.clone()
    }

    /// The object a job's result is written to: one per job, whatever the attempt.
    pub fn result_object(job_id: &str) -> String {
        format!("style/{job_id}.png")
    }

    /// Loops until `stop` turns true. Redis outages are waited out with backoff.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(500);
        let mut next_prune = Instant::now();
        while !*stop.borrow() {
            self.liveness.beat();
            if Instant::now() >= next_prune {
                self.prune_consumers(false).await;
                next_prune = Instant::now() + self.config.reclaim_after;
            }
            match self.step(&mut stop).await {
                Ok(step) => {
                    backoff = Duration::from_millis(500);
                    if step != Step::Idle {
                        tracing::info!(?step, "style job attempt ended");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, wait_ms = backoff.as_millis() as u64, "style queue error; retrying");
                    metrics::counter!("ongi_style_queue_errors_total").increment(1);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped(&mut stop) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        self.prune_consumers(true).await;
        tracing::info!("worker stopped");
    }

    /// Removes the consumers of workers that are gone (silent past the reclaim timeout and
    /// holding nothing), and this one when `leaving`. Best-effort: a failure is logged, and
    /// the next turn tries again.
    async fn prune_consumers(&self, leaving: bool) {
        match self.queue.prune_consumers(self.config.reclaim_after, leaving).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, leaving, "removed consumers of workers that are gone"),
            Err(e) => tracing::warn!(error = %e, "could not prune the style group's consumers"),
        }
    }

    /// Claims at most one job and runs one attempt of it.
    pub async fn step(&self, stop: &mut watch::Receiver<bool>) -> Result<Step, QueueError> {
        self.record_depth().await;
        // A stop request interrupts the wait for a job. (An entry delivered in that instant
        // stays pending and is reclaimed after the idle timeout: late, never lost.)
        let claimed = tokio::select! {
            outcome = self.queue.claim(self.config.reclaim_after) => outcome?,
            _ = stopped(stop) => return Ok(Step::Idle),
        };
        match claimed {
            ClaimOutcome::Idle => Ok(Step::Idle),
            ClaimOutcome::DeadLettered { job_id, error } => {
                tracing::error!(%job_id, %error, "style job abandoned by dead workers too often: dead letter");
                if let Ok(Some(job)) = self.queue.queue().get(&job_id).await {
                    self.publish(&job, "failed", None, Some(&error)).await;
                }
                Ok(Step::DeadLettered { job_id, error })
            }
            ClaimOutcome::Run(claimed) => self.attempt(*claimed, stop).await,
        }
    }

    async fn attempt(&self, claimed: Claimed, stop: &mut watch::Receiver<bool>) -> Result<Step, QueueError> {
        let job_id = claimed.job.id.clone();
        let span = tracing::info_span!("style_job", job_id = %job_id, attempt = claimed.attempt);
        let _entered = span.enter();
        tracing::info!(reclaimed = claimed.reclaimed, image = %claimed.job.spec.object, style = %claimed.job.spec.style, "style job started");
        let started = Instant::now();
        let cancel = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeats(
            self.queue.clone(),
            claimed.clone(),
            self.config.heartbeat_every,
            cancel.clone(),
            lost.clone(),
        ));

        let work = self.produce(&claimed, cancel.clone());
        tokio::pin!(work);
        let result = tokio::select! {
            r = &mut work => r,
            _ = stopped(stop) => {
                tracing::info!(grace_s = self.config.shutdown_grace.as_secs_f64(), "stop requested: finishing the current job");
                match tokio::time::timeout(self.config.shutdown_grace, &mut work).await {
                    Ok(r) => r,
                    Err(_) => {
                        cancel.store(true, Ordering::Relaxed);
                        work.await
                    }
                }
            }
        };
        heartbeat.abort();
        let seconds = started.elapsed().as_secs_f64();
        if lost.load(Ordering::Relaxed) {
            metrics::counter!("ongi_style_jobs_total", "outcome" => "lost").increment(1);
            tracing::warn!("another worker took this job over; dropping this attempt's outcome");
            return Ok(Step::Lost { job_id });
        }
        match result {
            Ok(object) => {
                if !self.queue.complete(&claimed, &object).await? {
                    metrics::counter!("ongi_style_jobs_total", "outcome" => "lost").increment(1);
                    return Ok(Step::Lost { job_id });
                }
                metrics::histogram!("ongi_style_job_seconds").record(seconds);
                metrics::counter!("ongi_style_jobs_total", "outcome" => "done").increment(1);
                tracing::info!(seconds, result = %object, "style job done");
                self.publish(&claimed.job, "done", Some(&object), None).await;
                Ok(Step::Done {
                    job_id,
                    result_object: object,
                })
            }
            Err(AttemptError::Cancelled) => {
                self.queue.release(&claimed).await?;
                metrics::counter!("ongi_style_jobs_total", "outcome" => "released").increment(1);
                tracing::info!("style job released unfinished");
                Ok(Step::Released { job_id })
            }
            Err(AttemptError::Failed(error)) => match self.queue.fail(&claimed, &error).await? {
                FailOutcome::Retrying => {
                    metrics::counter!("ongi_style_jobs_total", "outcome" => "retry").increment(1);
                    tracing::warn!(%error, "style job attempt failed; queued again");
                    Ok(Step::Retrying { job_id, error })
                }
                FailOutcome::DeadLettered => {
                    metrics::counter!("ongi_style_jobs_total", "outcome" => "dead_letter").increment(1);
                    tracing::error!(%error, attempts = claimed.attempt, "style job failed for good: dead letter");
                    self.publish(&claimed.job, "failed", None, Some(&error)).await;
                    Ok(Step::DeadLettered { job_id, error })
                }
                FailOutcome::Lost => Ok(Step::Lost { job_id }),
            },
        }
    }

    /// Reads, decodes, renders and stores one job's result; the object name on success.
    async fn produce(&self, claimed: &Claimed, cancel: Arc<AtomicBool>) -> Result<String, AttemptError> {
        let spec = &claimed.job.spec;
        let bucket = BucketName::parse(&spec.bucket).map_err(|e| AttemptError::Failed(format!("bucket: {e}")))?;
        let photo = self
            .store
            .get(&bucket, &spec.object, self.config.limits.max_bytes)
            .await
            .map_err(|e| AttemptError::Failed(format!("reading the photo: {e}")))?;
        self.liveness.beat();
        let renderer = self.renderer.clone();
        let alive = self.liveness.clone();
        let limits = self.config.limits;
        let job = spec.clone();
        let png = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, AttemptError> {
            let decoded = decode(
                &photo.bytes,
                &limits,
                DecodeOptions {
                    min_short_side: None,
                    // The JPEG decode can stop at the scale the diffusion input needs.
                    min_long_side: Some(DIFFUSION_LONG_SIDE),
                },
            )
            .map_err(|e| AttemptError::Failed(format!("decoding the photo: {e}")))?;
            alive.beat();
            let output = renderer
                .render(&decoded.pixels, &job, &cancel, &alive)
                .map_err(|e| match e {
                    RenderError::Cancelled => AttemptError::Cancelled,
                    RenderError::Failed(why) => AttemptError::Failed(format!("diffusion: {why}")),
                })?;
            let mut out = Cursor::new(Vec::new());
            output
                .write_to(&mut out, image::ImageFormat::Png)
                .map_err(|e| AttemptError::Failed(format!("encoding the result: {e}")))?;
            Ok(out.into_inner())
        })
        .await
        .map_err(|e| AttemptError::Failed(format!("the diffusion thread stopped: {e}")))??;
        let object = Self::result_object(&claimed.job.id);
        self.store
            .put(&self.config.results_bucket, &object, Bytes::from(png), "image/png")
            .await
            .map_err(|e| AttemptError::Failed(format!("writing the result: {e}")))?;
        self.liveness.beat();
        Ok(object)
    }

    async fn publish(
        &self,
        job: &ongi_shared::queue::JobRecord,
        status: &'static str,
        result_object: Option<&str>,
        error: Option<&str>,
    ) {
        let message = StyleMessage {
            schema: STYLE_SCHEMA,
            job_id: &job.id,
            status,
            bucket: &job.spec.bucket,
            object: &job.spec.object,
            style: &job.spec.style,
            attempts: job.attempts.max(1),
            result_bucket: result_object.map(|_| self.config.results_bucket.as_str()),
            result_object,
            error,
        };
        let attributes = vec![
            ("schema".to_owned(), STYLE_SCHEMA.to_owned()),
            ("status".to_owned(), status.to_owned()),
        ];
        // The job's state is in Redis already; a lost message is logged, not retried.
        if let Err(e) = publish_json(self.publisher.as_ref(), &message, attributes).await {
            tracing::warn!(error = %e, "could not publish the style result");
        }
    }

    async fn record_depth(&self) {
        if let Ok(depth) = self.queue.queue().depth().await {
            metrics::gauge!("ongi_style_queue_depth").set(depth as f64);
        }
        if let Ok(dead) = self.queue.queue().dead_letters().await {
            metrics::gauge!("ongi_style_dead_letters").set(dead as f64);
        }
        if let Some(bytes) = crate::gpu::memory_used_bytes() {
            metrics::gauge!("ongi_style_gpu_memory_bytes").set(bytes as f64);
        }
    }
}

/// Resolves once a stop is requested. (The guard `wait_for` returns must not live across
/// an await in the caller: it is not `Send`.)
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Touches the entry until aborted; sets `lost` (and `cancel`) if it is no longer ours.
async fn heartbeats(
    queue: WorkerQueue,
    claimed: Claimed,
    every: Duration,
    cancel: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(every).await;
        match queue.heartbeat(&claimed).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::Relaxed);
                cancel.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; will try again"),
        }
    }
}

//! Batch reprocessing (DESIGN.md flow D): walk a bucket page by page, skip the photos whose
//! results are current for the deployed model, and process the rest with bounded
//! concurrency. `POST /batch/reprocess` and `ongi reprocess` are thin shells over [`Reprocessor`].
//!
//! - **Current**: a photo generation is current for a step when its exact alias
//!   (`bucket/object#generation` → content hash) is cached and so is the step's output for the
//!   deployed model id: the feature record for `embedding`, `Keyspace::result(module, model,
//!   hash)` for `category`, `quality` and `score`. A photo that could not be read (corrupt,
//!   unsupported, too large) is recorded under `Keyspace::failure` and not retried for the same
//!   generation and model.
//! - **Processing** is [`FeatureService::object`] (one download, one decode; a cache hit when
//!   only a per-photo step is missing). When the embedding step ran, `ongi-features` is told,
//!   as on an upload (flow A), so on Cloud Run the embedding function's walk fans out to the
//!   other functions' per-photo steps. Then each missing per-photo step of this process runs
//!   through [`steps`](super::steps): its result is published on `ongi-results` and then
//!   stored. Either publish failing leaves the photo due for the next call.
//! - **The cursor** is the last object name up to which everything is handled, kept in the
//!   cache's backend (Redis, or in-process) under a key naming the run: bucket, prefix, since,
//!   steps and the model id (a new model starts a new walk). Pages are listed after it, so a
//!   call cut off by its time budget or page limit resumes exactly there; a complete walk
//!   deletes it. A lease (`SET NX`, released compare-and-delete) keeps two overlapping calls
//!   from walking the same run.
//! - **Stopping**: after the time budget no new photo is started and the ones in flight finish;
//!   every call starts at least one photo (or finishes one page), so a tiny budget still moves
//!   the walk forward. A transient failure (storage, models, Pub/Sub) stops the call the same
//!   way, with the cursor before the photo that failed, and is reported as an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::FeatureService;
use super::steps::{ResultSubject, StepError, per_photo_result, result_entry, results_message};
use crate::cache::{Cache, CacheError, CacheKey};
use crate::domain::{BucketName, ContentHash, ImageRef, MAX_REF_BYTES};
use crate::events::publish::{FeaturesMessage, Publisher, publish_json};
use crate::model::Models;
use crate::model::loaded::PIXELS_ONLY;
use crate::modules::{Module, Modules};
use crate::pipeline::analyzer::Analyzer;
use crate::storage::{ListQuery, MAX_PAGE_SIZE, ObjectInfo, ObjectStore, StorageError};

/// How long a lease outlives its call's budget: photos in flight at the deadline finish
/// (each storage call is bounded at 30 s), then the cursor is saved.
const LEASE_GRACE: Duration = Duration::from_secs(120);
/// Failures listed one by one in a report; the counts cover all of them.
const FAILURES_LISTED: usize = 20;
/// Names whose extension says "photo" when the store gives no content type.
const IMAGE_EXTENSIONS: [&str; 13] = [
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "heic", "heif", "avif", "tif", "tiff", "bmp",
];

/// What a reprocessing run can redo for a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// The feature record (CLIP embedding and pixel features).
    Embedding,
    Category,
    Quality,
    Score,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Embedding, Step::Category, Step::Quality, Step::Score];

    pub fn name(self) -> &'static str {
        self.module().name()
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The module whose process serves this step.
    pub fn module(self) -> Module {
        match self {
            Step::Embedding => Module::Embedding,
            Step::Category => Module::Category,
            Step::Quality => Module::Quality,
            Step::Score => Module::Score,
        }
    }

    /// The per-photo step's module, for the steps whose output is a stored result.
    fn per_photo(self) -> Option<Module> {
        (self != Step::Embedding).then(|| self.module())
    }

    /// Why this process cannot run the step, if it cannot.
    fn missing_model(self, models: &Models) -> Option<&'static str> {
        let pixels_only = models.clip_model_id == PIXELS_ONLY;
        match self {
            Step::Embedding | Step::Quality => None,
            Step::Category if pixels_only || models.clip_textual.is_none() => Some(
                "category needs the CLIP encoders (clip-vit-b32-visual.onnx and -textual.onnx), which are not loaded",
            ),
            Step::Score if pixels_only || models.aesthetic.is_none() => Some(
                "score needs CLIP and the aesthetic head (aesthetic-vit-b32-linear.safetensors), which are not loaded",
            ),
            Step::Category | Step::Score => None,
        }
    }
}

/// Why a request cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request is wrong (a field, or a step this process does not serve): a 400.
    #[error("{0}")]
    Invalid(String),
    /// The step is served here but its model is not loaded: a 503.
    #[error("{0}")]
    Unavailable(String),
}

/// The steps of a run: the ones asked for, or by default every step this process serves and
/// can run. Sorted, without repeats.
pub fn resolve_steps(
    requested: Option<&[String]>,
    modules: &Modules,
    models: &Models,
) -> Result<Vec<Step>, RequestError> {
    let served = |s: &Step| modules.contains(s.module());
    let Some(requested) = requested else {
        let steps: Vec<Step> = Step::ALL
            .into_iter()
            .filter(|s| served(s) && s.missing_model(models).is_none())
            .collect();
        if steps.is_empty() {
            return Err(RequestError::Invalid(format!(
                "this process ({}) serves no step that can be reprocessed: call the embedding, category, quality or score function",
                modules.service_name()
            )));
        }
        return Ok(steps);
    };
    if requested.is_empty() {
        return Err(RequestError::Invalid(
            "steps is empty: leave it out for every step this process serves".into(),
        ));
    }
    let mut steps = Vec::with_capacity(requested.len());
    for name in requested {
        let step = Step::parse(name).ok_or_else(|| {
            RequestError::Invalid(format!(
                "steps: {:?} is not a step (expected embedding, category, quality or score)",
                name.chars().take(40).collect::<String>()
            ))
        })?;
        if !served(&step) {
            return Err(RequestError::Invalid(format!(
                "steps: {} is not served by this process ({})",
                step.name(),
                modules.service_name()
            )));
        }
        if let Some(why) = step.missing_model(models) {
            return Err(RequestError::Unavailable(why.to_owned()));
        }
        steps.push(step);
    }
    steps.sort_unstable();
    steps.dedup();
    Ok(steps)
}

/// Checks a listing prefix by the rules of image references (it is a name's beginning).
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_REF_BYTES {
        return Err(format!("prefix is longer than {MAX_REF_BYTES} bytes"));
    }
    if prefix.chars().any(char::is_control) {
        return Err("prefix contains a control character".into());
    }
    if prefix.starts_with('/') {
        return Err("prefix starts with '/': object names never do".into());
    }
    if prefix.contains('\\') {
        return Err("prefix contains a backslash".into());
    }
    if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
        return Err("prefix contains a '.', '..' or empty path segment".into());
    }
    Ok(())
}

/// The longest time budget a call may ask for.
pub const MAX_BUDGET: Duration = Duration::from_secs(3600);

/// A call as the route's body or the command line give it, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawRequest<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// RFC 3339, e.g. `2026-11-25T00:00:00Z`.
    pub since: Option<&'a str>,
    pub steps: Option<&'a [String]>,
    pub dry_run: bool,
    /// Seconds; the setting `ONGI_REPROCESS_BUDGET_SECS` when absent.
    pub budget_secs: Option<f64>,
    pub page_size: Option<u32>,
    pub max_pages: Option<u32>,
}

impl RawRequest<'_> {
    /// Validates every field, naming the first that is wrong. `bucket` must be the bucket
    /// this process serves: features are cached per bucket, and the album routes read only
    /// that one, so reprocessing another would fill the cache with entries nothing reads.
    pub fn validate(
        &self,
        served_bucket: &BucketName,
        modules: &Modules,
        models: &Models,
        default_budget: Duration,
    ) -> Result<ReprocessRequest, RequestError> {
        let invalid = |why: String| RequestError::Invalid(why);
        let shown = |s: &str| s.chars().take(80).collect::<String>();
        let bucket =
            BucketName::parse(self.bucket).map_err(|e| invalid(format!("bucket {:?}: {e}", shown(self.bucket))))?;
        if &bucket != served_bucket {
            return Err(invalid(format!(
                "bucket {:?} is not served here: this process reads photos from {:?} (ONGI_BUCKET)",
                bucket.as_str(),
                served_bucket.as_str()
            )));
        }
        validate_prefix(self.prefix).map_err(invalid)?;
        let since = match self.since {
            Some(s) => Some(crate::domain::time::parse_rfc3339(s).map_err(|e| invalid(format!("since: {e}")))?),
            None => None,
        };
        let budget = match self.budget_secs {
            Some(secs) if secs.is_finite() && secs > 0.0 && secs <= MAX_BUDGET.as_secs_f64() => {
                Duration::from_secs_f64(secs)
            }
            Some(_) => {
                return Err(invalid(format!(
                    "budget_secs must be a number of seconds above 0 and at most {}",
                    MAX_BUDGET.as_secs()
                )));
            }
            None => default_budget,
        };
        let page_size = match self.page_size {
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(_) => return Err(invalid(format!("page_size must be between 1 and {MAX_PAGE_SIZE}"))),
            None => MAX_PAGE_SIZE,
        };
        if self.max_pages == Some(0) {
            return Err(invalid("max_pages must be at least 1".into()));
        }
        Ok(ReprocessRequest {
            bucket,
            prefix: self.prefix.to_owned(),
            since,
            steps: resolve_steps(self.steps, modules, models)?,
            dry_run: self.dry_run,
            budget,
            page_size,
            max_pages: self.max_pages,
        })
    }
}

/// One validated call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReprocessRequest {
    pub bucket: BucketName,
    /// Only objects whose names start with this ("" for the whole bucket).
    pub prefix: String,
    /// Only objects updated at or after this time.
    pub since: Option<SystemTime>,
    pub steps: Vec<Step>,
    /// Count what would be processed; process nothing, move no cursor.
    pub dry_run: bool,
    /// No photo is started after this long.
    pub budget: Duration,
    /// Objects per listed page (1 to 1000).
    pub page_size: u32,
    /// Stop after this many pages (the cursor is saved; the next call resumes).
    pub max_pages: Option<u32>,
}

impl ReprocessRequest {
    /// The run's identity: a new `since`, step list or model starts a walk of its own.
    pub fn run_id(&self, model: &str) -> String {
        let steps: Vec<&str> = self.steps.iter().map(|s| s.name()).collect();
        let since = self.since.map(crate::domain::time::format_rfc3339);
        let identity = serde_json::json!([self.bucket.as_str(), self.prefix, since, steps, model]).to_string();
        ContentHash::of(identity.as_bytes()).to_hex()[..24].to_owned()
    }
}

/// A photo that failed, as listed in a report.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ReprocessFailure {
    pub object: String,
    /// The stable reason (`corrupt`, `unsupported_format`, `too_large`, `not_found`, …).
    pub reason: String,
    pub detail: String,
}

/// What one call did. `scanned` = `skipped` + `processed` + `failed` (+ `would_process` in a
/// dry run), except after a transient failure, when photos beyond the cursor may have been
/// processed already (the next call skips them).
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct ReprocessReport {
    /// The run's id (bucket, prefix, since, steps, model), which names its cursor.
    pub run: String,
    /// The walk reached the end of the listing (the cursor is deleted).
    pub complete: bool,
    /// The name after which the next call resumes; `null` when complete (or never started).
    pub cursor: Option<String>,
    /// Why the call stopped before the end: `time_budget` or `page_limit`.
    pub stopped: Option<String>,
    pub dry_run: bool,
    pub steps: Vec<String>,
    /// The model id whose results count as current.
    pub model: String,
    /// Objects listed and handled by this call.
    pub scanned: u64,
    pub processed: u64,
    /// In a dry run: the photos a real call would process.
    pub would_process: u64,
    pub skipped: u64,
    /// `current`, `not_image`, `before_since`, `invalid_name`, `failed_before`.
    pub skipped_by_reason: BTreeMap<String, u64>,
    pub failed: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    /// The first failures, with their details.
    pub failures: Vec<ReprocessFailure>,
    pub pages: u32,
    pub elapsed_ms: u64,
}

impl ReprocessReport {
    fn skip(&mut self, reason: &str) {
        self.skipped += 1;
        *self.skipped_by_reason.entry(reason.to_owned()).or_default() += 1;
    }

    fn fail(&mut self, object: &str, reason: &str, detail: &str) {
        self.failed += 1;
        *self.failed_by_reason.entry(reason.to_owned()).or_default() += 1;
        if self.failures.len() < FAILURES_LISTED {
            self.failures.push(ReprocessFailure {
                object: object.to_owned(),
                reason: reason.to_owned(),
                detail: detail.to_owned(),
            });
        }
    }

    /// Adds a later call of the same run (`ongi reprocess` chains calls): counts add up,
    /// the state (`complete`, `cursor`, `stopped`) is the later call's.
    pub fn absorb(&mut self, later: ReprocessReport) {
        self.complete = later.complete;
        self.cursor = later.cursor;
        self.stopped = later.stopped;
        self.scanned += later.scanned;
        self.processed += later.processed;
        self.would_process += later.would_process;
        self.skipped += later.skipped;
        self.failed += later.failed;
        for (reason, n) in later.skipped_by_reason {
            *self.skipped_by_reason.entry(reason).or_default() += n;
        }
        for (reason, n) in later.failed_by_reason {
            *self.failed_by_reason.entry(reason).or_default() += n;
        }
        let room = FAILURES_LISTED.saturating_sub(self.failures.len());
        self.failures.extend(later.failures.into_iter().take(room));
        self.pages += later.pages;
        self.elapsed_ms += later.elapsed_ms;
    }

    /// One line for logs and errors.
    pub fn summary(&self) -> String {
        format!(
            "{} scanned, {} processed, {} skipped, {} failed",
            self.scanned, self.processed, self.skipped, self.failed
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    #[error("another call is reprocessing this run ({run}) right now; retry when it has finished")]
    Busy { run: String, retry_after: Duration },
    #[error("the cache is unavailable (it holds the run's cursor): {0}")]
    Cache(#[from] CacheError),
    #[error("bucket {0} was not found")]
    NoBucket(String),
    /// A transient failure stopped the call; the cursor is saved before what failed.
    #[error("reprocessing stopped: {cause} ({}); the next call resumes from the cursor", .report.summary())]
    Stopped {
        cause: String,
        report: Box<ReprocessReport>,
    },
}

/// What a progress display hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A page of this many objects was listed.
    Listed(usize),
    /// One object was handled.
    Done(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    WouldProcess,
    Skipped,
    Failed,
}

pub type Progress = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

#[derive(Serialize, Deserialize)]
struct SavedCursor {
    after: String,
    saved_at: String,
}

/// Where a listed object stands before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Skip(&'static str),
    /// To process; `features`: the embedding step itself is due (its generation is new to
    /// the cache, or its record is gone), not only a per-photo step.
    Due {
        features: bool,
    },
}

impl Verdict {
    fn is_due(self) -> bool {
        matches!(self, Verdict::Due { .. })
    }
}

enum ItemResult {
    Processed,
    Failed {
        reason: String,
        detail: String,
    },
    /// A retry may succeed: the walk stops before this photo.
    Transient(String),
}

/// The walk, with everything it needs; cheap to clone (every part is shared).
#[derive(Clone)]
pub struct Reprocessor {
    store: Arc<dyn ObjectStore>,
    cache: Cache,
    features: Arc<FeatureService>,
    analyzer: Arc<Analyzer>,
    publishers: Publishers,
    concurrency: usize,
}

/// Where a walk announces what it did, as the event routes do.
#[derive(Clone)]
pub struct Publishers {
    /// `ongi-features`, for photos whose embedding step ran (the per-photo steps of the
    /// other functions listen there); only the embedding function really publishes.
    pub features: Arc<dyn Publisher>,
    /// `ongi-results`, for every per-photo result computed.
    pub results: Arc<dyn Publisher>,
}

impl Reprocessor {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        cache: Cache,
        features: Arc<FeatureService>,
        analyzer: Arc<Analyzer>,
        publishers: Publishers,
        concurrency: usize,
    ) -> Self {
        Self {
            store,
            cache,
            features,
            analyzer,
            publishers,
            concurrency: concurrency.max(1),
        }
    }

    /// One call: from the saved cursor until the end, the budget or the page limit.
    pub async fn run(
        &self,
        req: &ReprocessRequest,
        progress: Option<Progress>,
    ) -> Result<ReprocessReport, ReprocessError> {
        let model = self.features.model_id().to_owned();
        let run = req.run_id(&model);
        let ks = self.cache.keyspace().clone();
        let lease_key = ks.reprocess_lease(&run);
        let token = uuid::Uuid::new_v4().to_string();
        if !req.dry_run {
            let ttl = req.budget.saturating_add(LEASE_GRACE);
            if !self
                .cache
                .backend()
                .set_if_absent(&lease_key, Bytes::from(token.clone()), ttl)
                .await?
            {
                return Err(ReprocessError::Busy {
                    run,
                    retry_after: req.budget.max(Duration::from_secs(1)),
                });
            }
        }
        let outcome = self.walk(req, &model, &run, progress).await;
        if !req.dry_run {
            // A lease that cannot be released expires by itself.
            if let Err(e) = self.cache.backend().delete_if_equal(&lease_key, token.as_bytes()).await {
                tracing::warn!(run = %run, error = %e, "the reprocessing lease was not released; it expires by itself");
            }
        }
        match &outcome {
            Ok(r) => tracing::info!(run = %run, complete = r.complete, cursor = r.cursor.as_deref().unwrap_or("-"),
                dry_run = r.dry_run, summary = %r.summary(), "reprocessing call finished"),
            Err(e) => tracing::warn!(run = %run, error = %e, "reprocessing call stopped"),
        }
        outcome
    }

    async fn load_cursor(&self, key: &CacheKey) -> Result<Option<String>, ReprocessError> {
        let value = self.cache.backend().get_many(std::slice::from_ref(key)).await?;
        Ok(value
            .into_iter()
            .next()
            .flatten()
            .and_then(|b| match serde_json::from_slice::<SavedCursor>(&b) {
                Ok(c) => Some(c.after),
                Err(e) => {
                    // Starting over costs a walk over current photos, nothing more.
                    tracing::warn!(key = key.as_str(), error = %e, "unreadable reprocessing cursor; starting over");
                    None
                }
            }))
    }

    async fn save_cursor(&self, key: &CacheKey, after: &str) -> Result<(), CacheError> {
        let saved = SavedCursor {
            after: after.to_owned(),
            saved_at: crate::domain::time::format_rfc3339(SystemTime::now()),
        };
        let value = serde_json::to_vec(&saved).map_err(|e| CacheError::Other(e.to_string()))?;
        self.cache
            .backend()
            .set_many(&[(key.clone(), Bytes::from(value))], self.cache.ttl())
            .await
    }

    async fn walk(
        &self,
        req: &ReprocessRequest,
        model: &str,
        run: &str,
        progress: Option<Progress>,
    ) -> Result<ReprocessReport, ReprocessError> {
        let started = Instant::now();
        let deadline = started + req.budget;
        let cursor_key = self.cache.keyspace().reprocess_cursor(run);
        let saved = self.load_cursor(&cursor_key).await?;
        let mut report = ReprocessReport {
            run: run.to_owned(),
            cursor: saved.clone(),
            dry_run: req.dry_run,
            steps: req.steps.iter().map(|s| s.name().to_owned()).collect(),
            model: model.to_owned(),
            ..ReprocessReport::default()
        };
        let tell = |event| {
            if let Some(p) = &progress {
                p(event);
            }
        };
        let mut query = ListQuery {
            prefix: req.prefix.clone(),
            start_after: saved.clone(),
            page_token: None,
            page_size: req.page_size.clamp(1, MAX_PAGE_SIZE),
        };
        let mut after = saved;
        // Whether this call has moved the walk forward: until it has, the budget does not stop it.
        let started_any = AtomicBool::new(false);
        let finish = |mut report: ReprocessReport| {
            report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            report
        };
        loop {
            if report.pages > 0 {
                let why = if req.max_pages.is_some_and(|max| report.pages >= max) {
                    Some("page_limit")
                } else if Instant::now() >= deadline {
                    Some("time_budget")
                } else {
                    None
                };
                if let Some(why) = why {
                    report.stopped = Some(why.to_owned());
                    return Ok(finish(report));
                }
            }
            let page = match self.store.list(&req.bucket, &query).await {
                Ok(page) => page,
                Err(StorageError::BucketNotFound(b)) => return Err(ReprocessError::NoBucket(b)),
                Err(e) => {
                    return Err(ReprocessError::Stopped {
                        cause: format!("listing {} failed: {e}", req.bucket),
                        report: Box::new(finish(report)),
                    });
                }
            };
            report.pages += 1;
            tell(ProgressEvent::Listed(page.objects.len()));
            let verdicts = self.verdicts(req, model, &page.objects).await;
            let objects = &page.objects;

            let results = if req.dry_run {
                (0..objects.len()).map(|_| None).collect()
            } else {
                self.process_due(req, model, objects, &verdicts, deadline, &started_any)
                    .await
            };
            let (handled, transient) = tally(req, objects, &verdicts, &results, &mut report, &tell);
            if handled > 0 {
                after = Some(objects[handled - 1].name.clone());
                started_any.store(true, Ordering::Relaxed);
            }
            if !req.dry_run {
                if let Some(after) = after.as_deref().filter(|_| handled > 0)
                    && let Err(e) = self.save_cursor(&cursor_key, after).await
                {
                    return Err(ReprocessError::Stopped {
                        cause: format!("the cursor could not be saved: {e}"),
                        report: Box::new(finish(report)),
                    });
                }
                report.cursor = after.clone();
            }
            if let Some(cause) = transient {
                return Err(ReprocessError::Stopped {
                    cause,
                    report: Box::new(finish(report)),
                });
            }
            if handled < objects.len() {
                report.stopped = Some("time_budget".to_owned());
                return Ok(finish(report));
            }
            match page.next_page_token {
                Some(token) => query.page_token = Some(token),
                None => break,
            }
        }
        report.complete = true;
        if !req.dry_run {
            self.cache.backend().delete(std::slice::from_ref(&cursor_key)).await?;
            report.cursor = None;
        }
        Ok(finish(report))
    }

    /// Processes a page's due photos, at most `concurrency` at once and in name order, until
    /// the deadline (once this call has moved the walk) or a transient failure. Results by
    /// position in the page; `None` for what was not started.
    async fn process_due(
        &self,
        req: &ReprocessRequest,
        model: &str,
        objects: &[ObjectInfo],
        verdicts: &[Verdict],
        deadline: Instant,
        started_any: &AtomicBool,
    ) -> Vec<Option<ItemResult>> {
        let mut results: Vec<Option<ItemResult>> = (0..objects.len()).map(|_| None).collect();
        let due: Vec<usize> = (0..objects.len()).filter(|&i| verdicts[i].is_due()).collect();
        let halt = AtomicBool::new(false);
        let done: Vec<(usize, ItemResult)> = futures::stream::iter(due)
            .take_while(|_| {
                let out_of_time = Instant::now() >= deadline && started_any.load(Ordering::Relaxed);
                let go = !halt.load(Ordering::Relaxed) && !out_of_time;
                if go {
                    started_any.store(true, Ordering::Relaxed);
                }
                std::future::ready(go)
            })
            .map(|i| {
                let features_due = verdicts[i] == Verdict::Due { features: true };
                async move { (i, self.process(req, model, &objects[i], features_due).await) }
            })
            .buffer_unordered(self.concurrency)
            .inspect(|(_, r)| {
                if matches!(r, ItemResult::Transient(_)) {
                    halt.store(true, Ordering::Relaxed);
                }
            })
            .collect()
            .await;
        for (i, r) in done {
            results[i] = Some(r);
        }
        results
    }

    /// Where each listed object stands, from two cache round trips for the whole page.
    async fn verdicts(&self, req: &ReprocessRequest, model: &str, objects: &[ObjectInfo]) -> Vec<Verdict> {
        let mut verdicts: Vec<Verdict> = objects.iter().map(|o| first_look(req, o)).collect();
        let candidates: Vec<usize> = (0..objects.len()).filter(|&i| verdicts[i].is_due()).collect();
        if candidates.is_empty() {
            return verdicts;
        }
        let ks = self.cache.keyspace();
        let bucket = &req.bucket;
        let keys: Vec<CacheKey> = candidates
            .iter()
            .flat_map(|&i| {
                let o = &objects[i];
                [
                    ks.alias(bucket, &o.name, o.generation),
                    ks.failure(model, bucket, &o.name, o.generation),
                ]
            })
            .collect();
        let values = self.cache.get_many(&keys).await;
        // (object, key, whether the key is the feature record)
        let mut needed: Vec<(usize, CacheKey, bool)> = Vec::new();
        for (n, &i) in candidates.iter().enumerate() {
            if values[2 * n + 1].is_some() {
                verdicts[i] = Verdict::Skip("failed_before");
                continue;
            }
            let Some(hash) = values[2 * n].as_deref().and_then(FeatureService::alias_hash) else {
                continue;
            };
            // Known content: current when every step's output is there too.
            verdicts[i] = Verdict::Skip("current");
            for step in &req.steps {
                let (key, is_features) = match step.per_photo() {
                    None => (ks.features(model, &hash), true),
                    Some(module) => (ks.result(module.name(), model, &hash), false),
                };
                needed.push((i, key, is_features));
            }
        }
        let keys: Vec<CacheKey> = needed.iter().map(|(_, k, _)| k.clone()).collect();
        let found = self.cache.get_many(&keys).await;
        for ((i, _, is_features), value) in needed.iter().zip(found) {
            if value.is_none() {
                let features = *is_features || verdicts[*i] == Verdict::Due { features: true };
                verdicts[*i] = Verdict::Due { features };
            }
        }
        verdicts
    }

    async fn process(
        &self,
        req: &ReprocessRequest,
        model: &str,
        object: &ObjectInfo,
        features_due: bool,
    ) -> ItemResult {
        let bucket = &req.bucket;
        let features = match self.features.object(bucket, &object.name, object.generation).await {
            Ok(f) => f,
            Err(e) if e.transient => return ItemResult::Transient(format!("{bucket}/{}: {e}", object.name)),
            Err(e) => return self.failed_for_good(model, bucket, object, e.reason, e.detail).await,
        };
        let ks = self.cache.keyspace();
        if features_due && req.steps.contains(&Step::Embedding) {
            // As flow A does: the other functions' per-photo steps listen on ongi-features.
            let message = FeaturesMessage::new(
                bucket.as_str(),
                &object.name,
                object.generation,
                features.hash.to_hex(),
                model,
                features.computed,
            );
            if let Err(e) = publish_json(self.publishers.features.as_ref(), &message, message.attributes()).await {
                // The features are cached, so this generation would now look current and never
                // be announced: forgetting its alias keeps it due for the next call.
                let alias = ks.alias(bucket, &object.name, object.generation);
                if let Err(forget) = self.cache.backend().delete(std::slice::from_ref(&alias)).await {
                    tracing::warn!(alias = alias.as_str(), error = %forget, "an unannounced photo's alias could not be forgotten");
                }
                return ItemResult::Transient(e.to_string());
            }
        }
        let modules: Vec<Module> = req.steps.iter().filter_map(|s| s.per_photo()).collect();
        let keys: Vec<CacheKey> = modules
            .iter()
            .map(|m| ks.result(m.name(), model, &features.hash))
            .collect();
        let have = self.cache.get_many(&keys).await;
        let hash = features.hash.to_hex();
        let subject = ResultSubject {
            bucket: bucket.as_str(),
            object: &object.name,
            generation: object.generation,
            content_hash: &hash,
            model,
        };
        for (&module, have) in modules.iter().zip(have) {
            if have.is_some() {
                continue;
            }
            let result = match per_photo_result(&self.analyzer, module, &features.record).await {
                Ok(Some(result)) => result,
                Ok(None) => {
                    let why = format!("{module} needs the photo's CLIP embedding; its features have none");
                    return self.failed_for_good(model, bucket, object, "no_embedding", why).await;
                }
                Err(StepError::Unavailable(cause)) => return ItemResult::Transient(cause),
                // A bug, not the photo's fault: not recorded, so a fixed build retries it.
                Err(StepError::Internal(detail)) => {
                    return ItemResult::Failed {
                        reason: "internal".into(),
                        detail,
                    };
                }
            };
            // Published first: a result in the cache is one `ongi-results` has carried.
            let (message, attributes) = results_message(module, &subject, &result);
            if let Err(e) = publish_json(self.publishers.results.as_ref(), &message, attributes).await {
                return ItemResult::Transient(e.to_string());
            }
            match result_entry(ks, module, model, &features.hash, &result) {
                Ok(entry) => {
                    self.cache.set_many(&[entry]).await;
                }
                Err(e) => {
                    return ItemResult::Failed {
                        reason: "internal".into(),
                        detail: e.to_string(),
                    };
                }
            }
        }
        ItemResult::Processed
    }

    /// Records a failure that no retry of this generation can fix, and reports it.
    async fn failed_for_good(
        &self,
        model: &str,
        bucket: &BucketName,
        object: &ObjectInfo,
        reason: &str,
        detail: String,
    ) -> ItemResult {
        let key = self
            .cache
            .keyspace()
            .failure(model, bucket, &object.name, object.generation);
        self.cache
            .set_many(&[(key, Bytes::from(reason.as_bytes().to_vec()))])
            .await;
        ItemResult::Failed {
            reason: reason.to_owned(),
            detail,
        }
    }
}

/// Counts a page into the report. Work done counts wherever it happened; the walk (and
/// `scanned`) only advances over the handled prefix of the page, so nothing after a gap (a
/// photo not started, or one that failed transiently) is passed over by the next call.
/// Returns the length of that prefix and the first transient failure.
fn tally(
    req: &ReprocessRequest,
    objects: &[ObjectInfo],
    verdicts: &[Verdict],
    results: &[Option<ItemResult>],
    report: &mut ReprocessReport,
    tell: &impl Fn(ProgressEvent),
) -> (usize, Option<String>) {
    let mut handled = 0;
    let mut transient: Option<String> = None;
    let mut gap = false;
    for (i, object) in objects.iter().enumerate() {
        let finished = match (verdicts[i], &results[i]) {
            (Verdict::Skip(_), _) => true,
            (Verdict::Due { .. }, _) if req.dry_run => true,
            (Verdict::Due { .. }, Some(ItemResult::Transient(cause))) => {
                transient.get_or_insert_with(|| cause.clone());
                false
            }
            (Verdict::Due { .. }, Some(_)) => true,
            (Verdict::Due { .. }, None) => false,
        };
        match &results[i] {
            Some(ItemResult::Processed) => {
                report.processed += 1;
                metrics::counter!("ongi_reprocess_objects_total", "outcome" => "processed").increment(1);
                tell(ProgressEvent::Done(Outcome::Processed));
            }
            Some(ItemResult::Failed { reason, detail }) => {
                report.fail(&object.name, reason, detail);
                metrics::counter!("ongi_reprocess_objects_total", "outcome" => "failed").increment(1);
                tell(ProgressEvent::Done(Outcome::Failed));
            }
            _ => {}
        }
        gap |= !finished;
        if gap {
            continue;
        }
        handled = i + 1;
        report.scanned += 1;
        match verdicts[i] {
            Verdict::Skip(reason) => {
                report.skip(reason);
                metrics::counter!("ongi_reprocess_objects_total", "outcome" => "skipped").increment(1);
                tell(ProgressEvent::Done(Outcome::Skipped));
            }
            Verdict::Due { .. } if req.dry_run => {
                report.would_process += 1;
                tell(ProgressEvent::Done(Outcome::WouldProcess));
            }
            Verdict::Due { .. } => {}
        }
    }
    (handled, transient)
}

/// What the listing alone says: too old, not a photo, a name no reference can carry.
fn first_look(req: &ReprocessRequest, object: &ObjectInfo) -> Verdict {
    if req.since.is_some_and(|since| object.updated < since) {
        return Verdict::Skip("before_since");
    }
    if !image_like(object) {
        return Verdict::Skip("not_image");
    }
    if ImageRef::parse(&object.name).is_err() {
        return Verdict::Skip("invalid_name");
    }
    // Unknown content until its alias is read: everything is due.
    Verdict::Due { features: true }
}

/// A photo by its content type (`image/*`), or, where the type is absent or generic, by its
/// extension. The decoder has the last word: a "photo" it cannot read is a failure.
pub fn image_like(object: &ObjectInfo) -> bool {
    if object.name.ends_with('/') {
        // A folder placeholder.
        return false;
    }
    let content_type = object
        .content_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("image/") {
        return true;
    }
    let generic = matches!(
        content_type.as_str(),
        "" | "application/octet-stream" | "binary/octet-stream"
    );
    let file = object.name.rsplit('/').next().unwrap_or_default();
    let extension = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    generic && extension.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::UNIX_EPOCH;

    use async_trait::async_trait;

    use super::*;
    use crate::analysis::AnalysisSettings;
    use crate::cache::Keyspace;
    use crate::cache::memory::MemoryCache;
    use crate::config::IngestLimits;
    use crate::events::publish::{FEATURES_SCHEMA, PublishError};
    use crate::storage::local::LocalStore;

    /// Records what is published, or refuses everything while `down`.
    #[derive(Default)]
    struct Topic {
        sent: Mutex<Vec<serde_json::Value>>,
        down: AtomicBool,
    }

    #[async_trait]
    impl Publisher for Topic {
        async fn publish(&self, data: Bytes, _attributes: Vec<(String, String)>) -> Result<String, PublishError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(PublishError::Publish {
                    topic: "test".into(),
                    reason: "down".into(),
                });
            }
            let value = serde_json::from_slice(&data).map_err(|e| PublishError::Publish {
                topic: "test".into(),
                reason: e.to_string(),
            })?;
            self.sent.lock().unwrap().push(value);
            Ok("1".into())
        }

        fn kind(&self) -> &'static str {
            "test"
        }
    }

    #[tokio::test]
    async fn the_embedding_step_is_announced_and_a_failed_announcement_leaves_the_photo_due() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("uploads/a")).unwrap();
        for i in 0..2u8 {
            let img = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([x as u8 * 9, y as u8 * 11, i * 90]));
            img.save(dir.path().join(format!("uploads/a/{i}.png"))).unwrap();
        }
        let bucket = BucketName::parse("uploads").unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let cache = Cache::new(
            Arc::new(MemoryCache::default()),
            Keyspace::new("t:"),
            Duration::from_secs(600),
        );
        let models = Arc::new(Models::none("test"));
        let service = FeatureService::new(
            store.clone(),
            cache.clone(),
            models.clone(),
            None,
            IngestLimits::default(),
            bucket.clone(),
            None,
        );
        let analyzer = Arc::new(Analyzer::new(models, cache.clone(), AnalysisSettings::default()));
        let (features, results) = (Arc::new(Topic::default()), Arc::new(Topic::default()));
        let walk = Reprocessor::new(
            store,
            cache,
            Arc::new(service),
            analyzer,
            Publishers {
                features: features.clone(),
                results: results.clone(),
            },
            2,
        );
        let req = ReprocessRequest {
            bucket,
            prefix: "a/".into(),
            since: None,
            steps: vec![Step::Embedding, Step::Quality],
            dry_run: false,
            budget: Duration::from_secs(30),
            page_size: 1000,
            max_pages: None,
        };

        features.down.store(true, Ordering::Relaxed);
        let stopped = walk.run(&req, None).await.unwrap_err();
        assert!(
            matches!(&stopped, ReprocessError::Stopped { report, .. } if report.cursor.is_none()),
            "{stopped}"
        );
        assert!(
            results.sent.lock().unwrap().is_empty(),
            "no result before its photo is announced"
        );

        features.down.store(false, Ordering::Relaxed);
        let done = walk.run(&req, None).await.unwrap();
        assert_eq!((done.processed, done.complete), (2, true), "{done:?}");
        let sent = features.sent.lock().unwrap().clone();
        let objects: Vec<&str> = sent.iter().filter_map(|m| m["object"].as_str()).collect();
        assert_eq!(objects.len(), 2);
        assert!(objects.contains(&"a/0.png") && objects.contains(&"a/1.png"), "{sent:?}");
        assert!(
            sent.iter()
                .all(|m| m["schema"] == FEATURES_SCHEMA && m["model"] == PIXELS_ONLY)
        );
        let results = results.sent.lock().unwrap().clone();
        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|m| m["module"] == "quality" && m["result"].is_object())
        );

        // Current now: nothing is done or announced again.
        let again = walk.run(&req, None).await.unwrap();
        assert_eq!((again.processed, again.skipped), (0, 2));
        assert_eq!(features.sent.lock().unwrap().len(), 2);
    }

    fn info(name: &str, content_type: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            name: name.into(),
            generation: 1,
            size: 1,
            updated: UNIX_EPOCH,
            content_type: content_type.map(str::to_owned),
        }
    }

    #[test]
    fn photos_are_told_by_type_then_by_extension() {
        assert!(image_like(&info("a/3f1c.webp", None)));
        assert!(image_like(&info("a/IMG_1.JPG", Some("application/octet-stream"))));
        assert!(image_like(&info("a/noext", Some("image/jpeg; charset=binary"))));
        assert!(!image_like(&info("a/notes.txt", None)));
        assert!(!image_like(&info("a/fake.jpg", Some("text/plain"))));
        assert!(!image_like(&info("a/", None)));
        assert!(!image_like(&info("a/noext", None)));
    }

    #[test]
    fn steps_default_to_what_is_served_and_loaded() {
        let none = Models::none("test");
        let all = resolve_steps(None, &Modules::all(), &none).unwrap();
        assert_eq!(
            all,
            vec![Step::Embedding, Step::Quality],
            "pixel-only: no category, no score"
        );
        let only = resolve_steps(None, &Modules::only(Module::Quality), &none).unwrap();
        assert_eq!(only, vec![Step::Quality]);
        assert!(matches!(
            resolve_steps(None, &Modules::only(Module::Duplicate), &none),
            Err(RequestError::Invalid(_))
        ));
        let asked = ["quality".to_owned(), "embedding".to_owned(), "quality".to_owned()];
        assert_eq!(
            resolve_steps(Some(&asked), &Modules::all(), &none).unwrap(),
            vec![Step::Embedding, Step::Quality]
        );
        let err = resolve_steps(Some(&["people".to_owned()]), &Modules::all(), &none).unwrap_err();
        assert!(err.to_string().contains("\"people\" is not a step"), "{err}");
        let err = resolve_steps(Some(&["embedding".to_owned()]), &Modules::only(Module::Quality), &none).unwrap_err();
        assert!(err.to_string().contains("not served"), "{err}");
        let err = resolve_steps(Some(&["score".to_owned()]), &Modules::all(), &none).unwrap_err();
        assert!(matches!(err, RequestError::Unavailable(_)), "{err}");
        assert!(matches!(
            resolve_steps(Some(&[]), &Modules::all(), &none),
            Err(RequestError::Invalid(_))
        ));
    }

    #[test]
    fn chained_calls_add_up() {
        let mut first = ReprocessReport {
            cursor: Some("a".into()),
            stopped: Some("time_budget".into()),
            scanned: 3,
            processed: 2,
            ..ReprocessReport::default()
        };
        first.skip("not_image");
        first.fail("x.jpg", "corrupt", "bad");
        let mut later = ReprocessReport {
            complete: true,
            scanned: 2,
            processed: 1,
            ..ReprocessReport::default()
        };
        later.skip("not_image");
        first.absorb(later);
        assert!(first.complete && first.cursor.is_none() && first.stopped.is_none());
        assert_eq!((first.scanned, first.processed, first.failed), (5, 3, 1));
        assert_eq!(first.skipped_by_reason["not_image"], 2);
        assert_eq!(first.failures.len(), 1);
    }

    #[test]
    fn prefixes_follow_the_reference_rules() {
        for ok in ["", "albums/", "albums/2026-", "a b/c"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["/abs", "a/../b", "..", "a//b", "a\\b", "a\nb", &"x".repeat(1025)] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_name_the_field_that_is_wrong() {
        let uploads = BucketName::parse("uploads").unwrap();
        let none = Models::none("test");
        let check = |raw: RawRequest<'_>| raw.validate(&uploads, &Modules::all(), &none, Duration::from_secs(50));
        let ok = check(RawRequest {
            bucket: "uploads",
            prefix: "a/",
            since: Some("2026-01-01T00:00:00Z"),
            ..RawRequest::default()
        })
        .unwrap();
        assert_eq!(ok.budget, Duration::from_secs(50));
        assert_eq!(ok.page_size, MAX_PAGE_SIZE);
        assert_eq!(ok.steps, vec![Step::Embedding, Step::Quality]);
        for (raw, expected) in [
            (
                RawRequest {
                    bucket: "Bad!",
                    ..RawRequest::default()
                },
                "bucket \"Bad!\"",
            ),
            (
                RawRequest {
                    bucket: "results",
                    ..RawRequest::default()
                },
                "is not served here",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    prefix: "../x",
                    ..RawRequest::default()
                },
                "prefix",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    since: Some("1750000000"),
                    ..RawRequest::default()
                },
                "since",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    budget_secs: Some(0.0),
                    ..RawRequest::default()
                },
                "budget_secs",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    budget_secs: Some(f64::NAN),
                    ..RawRequest::default()
                },
                "budget_secs",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    page_size: Some(1001),
                    ..RawRequest::default()
                },
                "page_size",
            ),
            (
                RawRequest {
                    bucket: "uploads",
                    max_pages: Some(0),
                    ..RawRequest::default()
                },
                "max_pages",
            ),
        ] {
            let err = check(raw).unwrap_err();
            assert!(matches!(err, RequestError::Invalid(_)), "{err}");
            assert!(err.to_string().contains(expected), "{err} should name {expected}");
        }
    }

    #[test]
    fn the_run_id_names_bucket_prefix_since_steps_and_model() {
        let req = ReprocessRequest {
            bucket: BucketName::parse("uploads").unwrap(),
            prefix: "a/".into(),
            since: None,
            steps: vec![Step::Embedding],
            dry_run: false,
            budget: Duration::from_secs(50),
            page_size: 1000,
            max_pages: None,
        };
        let id = req.run_id("m1");
        assert_eq!(id.len(), 24);
        assert_eq!(id, req.clone().run_id("m1"), "stable");
        assert_ne!(id, req.run_id("m2"), "a new model starts a new walk");
        let other = ReprocessRequest {
            prefix: "b/".into(),
            ..req.clone()
        };
        assert_ne!(id, other.run_id("m1"));
        let later = ReprocessRequest {
            since: Some(UNIX_EPOCH + Duration::from_secs(5)),
            ..req.clone()
        };
        assert_ne!(id, later.run_id("m1"));
        let budget = ReprocessRequest {
            budget: Duration::from_secs(1),
            dry_run: true,
            page_size: 5,
            ..req.clone()
        };
        assert_eq!(id, budget.run_id("m1"), "how a call is cut is not part of the run");
    }
}

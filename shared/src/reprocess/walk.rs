//! The paged walk of one call: the lease that keeps overlapping calls apart, the cursor
//! saved after each page, the budget and page limit, and the tally of a page into the report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::report::{ItemResult, Outcome, Progress, ProgressEvent, ReprocessError, ReprocessReport};
use super::request::ReprocessRequest;
use super::verdict::{Verdict, verdicts};
use crate::cache::{Cache, CacheError, CacheKey};
use crate::photo::PhotoFlow;
use crate::pipeline::decode_lanes::in_own_lane;
use crate::storage::{ListQuery, MAX_PAGE_SIZE, ObjectInfo, ObjectStore, StorageError};

/// How long a lease outlives its call's budget: photos in flight at the deadline finish
/// (each storage call is bounded at 30 s), then the cursor is saved.
const LEASE_GRACE: Duration = Duration::from_secs(120);

#[derive(Serialize, Deserialize)]
struct SavedCursor {
    after: String,
    saved_at: String,
}

/// The walk, with everything it needs; cheap to clone (every part is shared).
#[derive(Clone)]
pub struct Reprocessor {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) cache: Cache,
    /// What each due photo goes through, as an upload or an announcement does.
    pub(super) flow: PhotoFlow,
    pub(super) concurrency: usize,
}

impl Reprocessor {
    pub fn new(store: Arc<dyn ObjectStore>, cache: Cache, flow: PhotoFlow, concurrency: usize) -> Self {
        Self {
            store,
            cache,
            flow,
            concurrency: concurrency.max(1),
        }
    }

    /// One call: from the saved cursor until the end, the budget or the page limit.
    pub async fn run(
        &self,
        req: &ReprocessRequest,
        progress: Option<Progress>,
    ) -> Result<ReprocessReport, ReprocessError> {
        let model = self.flow.model_id().to_owned();
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
        // The whole run is one caller in the decode queues (`decode_lanes`).
        let outcome = in_own_lane(self.walk(req, &model, &run, progress)).await;
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
            let verdicts = verdicts(&self.cache, req, model, &page.objects).await;
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

//! What a call answers: the [`ReprocessReport`] and its counters (added up over chained
//! calls, from each photo's `ItemResult`), the [`ReprocessError`] that stops a call, and the [`ProgressEvent`]s a progress
//! display hears.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::CacheError;

/// Failures listed one by one in a report; the counts cover all of them.
const FAILURES_LISTED: usize = 20;

/// What became of one due photo, as the walk tallies it into the report.
pub(super) enum ItemResult {
    Processed,
    Failed {
        reason: String,
        detail: String,
    },
    /// A retry may succeed: the walk stops before this photo.
    Transient(String),
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
    pub(super) fn skip(&mut self, reason: &str) {
        self.skipped += 1;
        *self.skipped_by_reason.entry(reason.to_owned()).or_default() += 1;
    }

    pub(super) fn fail(&mut self, object: &str, reason: &str, detail: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

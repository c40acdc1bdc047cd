//! Processing a page's due photos with bounded concurrency, each through the per-photo flow
//! ([`PhotoFlow::run`](crate::photo::PhotoFlow::run)): its features, the `ongi-features`
//! announcement when the embedding step ran, then each missing per-photo result, published on
//! `ongi-results` and stored. A failure no retry can fix is recorded under
//! `Keyspace::failure`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;

use super::report::ItemResult;
use super::request::{ReprocessRequest, Step};
use super::verdict::Verdict;
use super::walk::Reprocessor;
use crate::domain::BucketName;
use crate::functions::Function;
use crate::photo::{Arrival, FlowError, PhotoObject};
use crate::storage::ObjectInfo;

impl Reprocessor {
    /// Processes a page's due photos, at most `concurrency` at once and in name order, until
    /// the deadline (once this call has moved the walk) or a transient failure. Results by
    /// position in the page; `None` for what was not started.
    pub(super) async fn process_due(
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

    /// One due photo through the per-photo flow: announced when its embedding step ran,
    /// then the results of this call's steps that are not stored yet.
    async fn process(
        &self,
        req: &ReprocessRequest,
        model: &str,
        object: &ObjectInfo,
        features_due: bool,
    ) -> ItemResult {
        let photo = PhotoObject {
            bucket: req.bucket.clone(),
            name: object.name.clone(),
            generation: object.generation,
        };
        let functions: Vec<Function> = req.steps.iter().filter_map(|s| s.per_photo()).collect();
        let announce = features_due && req.steps.contains(&Step::Embedding);
        match self.flow.run(&Arrival::walked(photo, announce, functions)).await {
            Ok(done) => match done.without_result.first() {
                None => ItemResult::Processed,
                Some(function) => {
                    let why = format!("{function} needs the photo's CLIP embedding; its features have none");
                    self.failed_for_good(model, &req.bucket, object, "no_embedding", why)
                        .await
                }
            },
            Err(FlowError::Transient(cause)) => ItemResult::Transient(cause),
            Err(FlowError::Unreadable(e)) => {
                self.failed_for_good(model, &req.bucket, object, e.reason.as_str(), e.detail)
                    .await
            }
            // A bug, not the photo's fault: not recorded, so a fixed build retries it.
            Err(FlowError::Internal(detail)) => ItemResult::Failed {
                reason: "internal".into(),
                detail,
            },
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::publish::FEATURES_SCHEMA;
    use crate::model::loaded::PIXELS_ONLY;
    use crate::photo::test_support::{local_flow, put_photo};
    use crate::reprocess::ReprocessError;

    #[tokio::test]
    async fn the_embedding_step_is_announced_and_a_failed_announcement_leaves_the_photo_due() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..2u8 {
            put_photo(dir.path(), &format!("a/{i}.png"), i);
        }
        let local = local_flow(dir.path());
        let (features, results, bucket) = (local.features.clone(), local.results.clone(), local.bucket.clone());
        let walk = Reprocessor::new(local.store, local.cache, local.flow, 2);
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
}

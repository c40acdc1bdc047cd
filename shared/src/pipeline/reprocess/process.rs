//! Processing a page's due photos with bounded concurrency: features through
//! [`FeatureService::object`](crate::pipeline::service::FeatureService::object), the
//! `ongi-features` announcement when the embedding step ran, then each missing per-photo step,
//! published on `ongi-results` and stored. A failure no retry can fix is recorded under
//! `Keyspace::failure`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;

use super::request::{ReprocessRequest, Step};
use super::verdict::Verdict;
use super::walk::Reprocessor;
use crate::cache::CacheKey;
use crate::domain::BucketName;
use crate::events::publish::{FeaturesMessage, publish_json};
use crate::modules::Module;
use crate::pipeline::steps::{ResultSubject, StepError, per_photo_result, result_entry, results_message};
use crate::storage::ObjectInfo;

pub(super) enum ItemResult {
    Processed,
    Failed {
        reason: String,
        detail: String,
    },
    /// A retry may succeed: the walk stops before this photo.
    Transient(String),
}

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
            Err(e) => {
                return self
                    .failed_for_good(model, bucket, object, e.reason.as_str(), e.detail)
                    .await;
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::cache::memory::MemoryCache;
    use crate::cache::{Cache, Keyspace};
    use crate::config::AnalysisSettings;
    use crate::config::IngestLimits;
    use crate::events::publish::{FEATURES_SCHEMA, PublishError, Publisher};
    use crate::model::Models;
    use crate::model::loaded::PIXELS_ONLY;
    use crate::pipeline::analyzer::Analyzer;
    use crate::pipeline::reprocess::{Publishers, ReprocessError};
    use crate::pipeline::service::FeatureService;
    use crate::storage::ObjectStore;
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
}
